"""The `test/service.py` module kafka-python's integration fixtures import,
which its release sdist leaves out. scripts/kafka-python-suite copies this
file into the unpacked sdist as `test/service.py`.

The suite only ever runs against the broker the script starts (KAFKA_URI is
always set), so the fixtures build an ExternalService, whose lifecycle is
the script's business: start, stop and dump_logs do nothing. A fixture that
tries to launch a broker of its own (the SSL and SASL tests, which the
script excludes) gets SpawnedService, which refuses at once rather than
looking for a Java broker that is not there.
"""


class ExternalService:
    """A broker started and stopped outside the test run."""

    def __init__(self, host, port):
        self.host = host
        self.port = port

    def start(self):
        pass

    def stop(self):
        pass

    def dump_logs(self):
        pass


class SpawnedService:
    """A broker the suite would launch itself: not available here."""

    def __init__(self, args=None, env=None):
        raise RuntimeError(
            "this run only tests the external broker in KAFKA_URI; "
            "a test asked to launch its own Kafka (%s)" % (args,)
        )
