"""SASL_PLAINTEXT, or SASL_SSL when WEIR_TEST_CA names the CA's PEM file,
against Weir with confluent-kafka (librdkafka) and kafka-python: PLAIN,
SCRAM-SHA-256 and SCRAM-SHA-512 with the right password produce and
consume; with a wrong one the client reports SASL_AUTHENTICATION_FAILED. `reauth` runs a confluent producer and consumer
across several session lifetimes (connections.max.reauth.ms) and counts
re-authentications and disconnects. `admin` adds a user through
AlterUserScramCredentials and logs in as it.
Usage: python_sasl.py matrix BOOTSTRAP USER PASSWORD
       python_sasl.py reauth BOOTSTRAP USER PASSWORD SECONDS
       python_sasl.py admin BOOTSTRAP USER PASSWORD
"""
import logging
import os
import sys
import time
import uuid

import kafka
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
N = 20
CA = os.environ.get("WEIR_TEST_CA")
PROTOCOL = "SASL_SSL" if CA else "SASL_PLAINTEXT"


def conf(bootstrap, mechanism, user, password, **extra):
    tls = {"ssl.ca.location": CA} if CA else {}
    return dict({"bootstrap.servers": bootstrap, "security.protocol": PROTOCOL,
                 "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password},
                **tls, **extra)


def confluent_round_trip(bootstrap, mechanism, user, password):
    topic = "sasl-" + uuid.uuid4().hex[:8]
    errors = []
    p = Producer(conf(bootstrap, mechanism, user, password, error_cb=errors.append))
    for i in range(N):
        p.produce(topic, key=str(i).encode(), value=("v%d" % i).encode())
    assert p.flush(30) == 0, "unsent records; errors: %s" % errors
    c = Consumer(conf(bootstrap, mechanism, user, password, **{
        "group.id": "g-" + topic, "auto.offset.reset": "earliest", "error_cb": errors.append}))
    c.subscribe([topic])
    got = []
    deadline = time.time() + 30
    while len(got) < N and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value().decode())
    c.close()
    assert got == ["v%d" % i for i in range(N)], got
    print("confluent %s: %d records" % (mechanism, len(got)))


def confluent_refused(bootstrap, mechanism, user):
    errors = []
    p = Producer(conf(bootstrap, mechanism, user, "not-the-password", error_cb=errors.append))
    deadline = time.time() + 15
    while not any(e.code() == KafkaError._AUTHENTICATION for e in errors) and time.time() < deadline:
        p.poll(0.1)
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    assert auth, "no authentication error: %s" % errors
    # librdkafka reports the broker's SASL_AUTHENTICATION_FAILED message.
    assert "invalid credentials" in auth[0].str(), auth[0].str()
    print("confluent %s wrong password: %s" % (mechanism, auth[0].str()))


def python_kwargs(bootstrap, mechanism, user, password):
    tls = {"ssl_cafile": CA} if CA else {}
    return dict(bootstrap_servers=bootstrap, security_protocol=PROTOCOL,
                sasl_mechanism=mechanism, sasl_plain_username=user, sasl_plain_password=password, **tls)


def kafka_python_round_trip(bootstrap, mechanism, user, password):
    topic = "sasl-kp-" + uuid.uuid4().hex[:8]
    p = kafka.KafkaProducer(**python_kwargs(bootstrap, mechanism, user, password))
    for i in range(N):
        p.send(topic, key=str(i).encode(), value=("v%d" % i).encode())
    p.flush(30)
    p.close()
    c = kafka.KafkaConsumer(topic, group_id="g-" + topic, auto_offset_reset="earliest",
                            consumer_timeout_ms=20000, **python_kwargs(bootstrap, mechanism, user, password))
    got = []
    for m in c:
        got.append(m.value.decode())
        if len(got) == N:
            break
    c.close()
    assert got == ["v%d" % i for i in range(N)], got
    print("kafka-python %s: %d records" % (mechanism, len(got)))


class Captured(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def kafka_python_refused(bootstrap, mechanism, user):
    captured = Captured()
    logging.getLogger("kafka").addHandler(captured)
    try:
        # Without bootstrap_timeout_ms kafka-python retries for 30 s.
        kafka.KafkaProducer(max_block_ms=3000, bootstrap_timeout_ms=3000, **python_kwargs(bootstrap, mechanism, user, "not-the-password"))
        raise AssertionError("kafka-python connected with a wrong password")
    except kafka.errors.KafkaError:
        pass
    finally:
        logging.getLogger("kafka").removeHandler(captured)
    failed = [m for m in captured.messages if "SaslAuthenticationFailedError" in m]
    assert failed, "no SaslAuthenticationFailedError in %s" % captured.messages[-5:]
    assert "invalid credentials" in failed[0], failed[0]
    print("kafka-python %s wrong password: %s" % (mechanism, failed[0]))


def matrix(bootstrap, user, password):
    for mechanism in MECHANISMS:
        confluent_round_trip(bootstrap, mechanism, user, password)
        confluent_refused(bootstrap, mechanism, user)
        kafka_python_round_trip(bootstrap, mechanism, user, password)
        kafka_python_refused(bootstrap, mechanism, user)


def reauth(bootstrap, user, password, seconds):
    topic = "reauth-" + uuid.uuid4().hex[:8]
    logger = logging.getLogger("rdkafka")
    logger.setLevel(logging.DEBUG)
    captured = Captured()
    logger.addHandler(captured)
    logger.propagate = False
    errors = []
    extra = {"error_cb": errors.append, "debug": "security,broker", "logger": logger}
    p = Producer(conf(bootstrap, "SCRAM-SHA-256", user, password, **extra))
    c = Consumer(conf(bootstrap, "SCRAM-SHA-256", user, password, **dict(extra, **{
        "group.id": "g-" + topic, "auto.offset.reset": "earliest"})))
    c.subscribe([topic])
    sent, got = 0, set()
    end = time.time() + seconds
    while time.time() < end:
        p.produce(topic, value=str(sent).encode())
        sent += 1
        p.poll(0)
        m = c.poll(0.05)
        if m is not None and not m.error():
            got.add(m.value().decode())
    assert p.flush(30) == 0
    deadline = time.time() + 30
    while len(got) < sent and time.time() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.add(m.value().decode())
    c.close()
    renewed = [m for m in captured.messages if "Broker changed state REAUTH" in m]
    dropped = [m for m in captured.messages if "Disconnected" in m or "connection close" in m.lower()]
    print("reauth: sent %d, consumed %d, re-authentications %d, disconnects %d, errors %d"
          % (sent, len(got), len(renewed), len(dropped), len(errors)))
    for m in dropped[:5] + [str(e) for e in errors[:5]]:
        print("  " + m)


def admin(bootstrap, user, password):
    a = AdminClient(conf(bootstrap, "SCRAM-SHA-512", user, password))
    upsert = UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192),
                                          b"carol-pw", b"carol-salt-0123")
    for _, f in a.alter_user_scram_credentials([upsert]).items():
        f.result(10)
    infos = a.describe_user_scram_credentials(["carol"])["carol"].result(10).scram_credential_infos
    assert [(i.mechanism, i.iterations) for i in infos] == [(ScramMechanism.SCRAM_SHA_256, 8192)], infos
    confluent_round_trip(bootstrap, "SCRAM-SHA-256", "carol", "carol-pw")
    confluent_round_trip(bootstrap, "PLAIN", "carol", "carol-pw")
    everyone = sorted(a.describe_user_scram_credentials().result(10))
    assert everyone == sorted([user, "carol"]), everyone
    print("admin: carol added and logged in")


if __name__ == "__main__":
    mode, bootstrap, user, password = sys.argv[1:5]
    if mode == "matrix":
        matrix(bootstrap, user, password)
    elif mode == "reauth":
        reauth(bootstrap, user, password, float(sys.argv[5]))
    elif mode == "admin":
        admin(bootstrap, user, password)
    else:
        raise SystemExit("unknown mode " + mode)
