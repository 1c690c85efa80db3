"""SASL OAUTHBEARER against Weir with confluent-kafka (librdkafka, through
`oauth_cb`) and kafka-python (`sasl_oauth_token_provider`). The tokens are
JWTs the calling test minted; this script only reads their `exp` (the
payload is base64url JSON), so it needs no JWT library.
`matrix`: with a valid token both clients produce and consume; with an
expired or forged one each reports the broker's authentication failure.
`reauth`: a confluent producer and consumer run for SECONDS over tokens
of ten seconds or less; librdkafka re-authenticates (KIP-368) as each
session ends and refreshes the token through `oauth_cb` before it
expires, so later re-authentications carry the new token.
`roundtrip`: confluent-kafka alone produces and consumes with TOKEN.
Usage: python_oauthbearer.py matrix BOOTSTRAP TOKEN EXPIRED FORGED
       python_oauthbearer.py roundtrip BOOTSTRAP TOKEN
       python_oauthbearer.py reauth BOOTSTRAP SECONDS TOKEN,TOKEN,...
"""
import base64
import json
import logging
import sys
import time
import uuid

import kafka
from confluent_kafka import Consumer, KafkaError, Producer
from kafka.net.sasl.oauth import AbstractTokenProvider

N = 20


def exp_of(token):
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))["exp"]


def conf(bootstrap, oauth_cb, **extra):
    return dict({"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
                 "sasl.mechanism": "OAUTHBEARER", "oauth_cb": oauth_cb}, **extra)


def fixed(token, expiry=None):
    """An oauth_cb handing out `token`; librdkafka refuses a token it is
    told has expired before sending it, so a refused token's expiry may be
    given as later than its exp: the broker must be the one to refuse."""
    return lambda _config: (token, expiry if expiry is not None else exp_of(token), "alice")


def confluent_round_trip(bootstrap, token):
    topic = "oauth-" + uuid.uuid4().hex[:8]
    errors = []
    p = Producer(conf(bootstrap, fixed(token), error_cb=errors.append))
    for i in range(N):
        p.produce(topic, key=str(i).encode(), value=("v%d" % i).encode())
    assert p.flush(30) == 0, "unsent records; errors: %s" % errors
    c = Consumer(conf(bootstrap, fixed(token), **{
        "group.id": "g-" + topic, "auto.offset.reset": "earliest", "error_cb": errors.append}))
    c.subscribe([topic])
    got = []
    deadline = time.time() + 30
    while len(got) < N and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value().decode())
    c.close()
    assert got == ["v%d" % i for i in range(N)], (got, errors)
    print("confluent OAUTHBEARER: %d records on %s" % (len(got), topic))


def confluent_refused(bootstrap, token, what):
    errors = []
    p = Producer(conf(bootstrap, fixed(token, time.time() + 60), error_cb=errors.append))
    deadline = time.time() + 15
    while not any(e.code() == KafkaError._AUTHENTICATION for e in errors) and time.time() < deadline:
        p.poll(0.1)
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    assert auth, "no authentication error with the %s token: %s" % (what, errors)
    print("confluent %s token refused: %s" % (what, auth[0].str()))


class Provider(AbstractTokenProvider):
    def __init__(self, token):
        super().__init__()
        self._token = token

    def token(self):
        return self._token


def python_kwargs(bootstrap, token):
    return dict(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
                sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=Provider(token))


def kafka_python_round_trip(bootstrap, token):
    topic = "oauth-kp-" + uuid.uuid4().hex[:8]
    p = kafka.KafkaProducer(**python_kwargs(bootstrap, token))
    for i in range(N):
        p.send(topic, key=str(i).encode(), value=("v%d" % i).encode())
    p.flush(30)
    p.close()
    c = kafka.KafkaConsumer(topic, group_id="g-" + topic, auto_offset_reset="earliest",
                            consumer_timeout_ms=20000, **python_kwargs(bootstrap, token))
    got = []
    for m in c:
        got.append(m.value.decode())
        if len(got) == N:
            break
    c.close()
    assert got == ["v%d" % i for i in range(N)], got
    print("kafka-python OAUTHBEARER: %d records" % len(got))


class Captured(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def kafka_python_refused(bootstrap, token, what):
    captured = Captured()
    logging.getLogger("kafka").addHandler(captured)
    try:
        # bootstrap_timeout_ms: without it the producer retries for 30 s.
        kafka.KafkaProducer(max_block_ms=3000, bootstrap_timeout_ms=3000,
                            **python_kwargs(bootstrap, token))
        raise AssertionError("kafka-python connected with the %s token" % what)
    except kafka.errors.KafkaError:
        pass
    finally:
        logging.getLogger("kafka").removeHandler(captured)
    failed = [m for m in captured.messages if "SaslAuthenticationFailedError" in m]
    assert failed, "no SaslAuthenticationFailedError in %s" % captured.messages[-5:]
    print("kafka-python %s token refused: %s" % (what, failed[0]))


def matrix(bootstrap, token, expired, forged):
    confluent_round_trip(bootstrap, token)
    kafka_python_round_trip(bootstrap, token)
    for what, bad in (("expired", expired), ("forged", forged)):
        confluent_refused(bootstrap, bad, what)
        kafka_python_refused(bootstrap, bad, what)


def reauth(bootstrap, seconds, tokens):
    used = set()
    calls = []

    def oauth_cb(_config):
        # The token with the longest life of at most ten seconds, as if a
        # new one were issued every two seconds: librdkafka refreshes at
        # 80% of a token's life, checked each second, so a token is never
        # handed out with less than eight seconds to live.
        now = time.time()
        token = max((t for t in tokens if exp_of(t) <= now + 10), key=exp_of)
        used.add(token)
        calls.append("%.2f oauth_cb -> exp %d" % (now, exp_of(token)))
        return token, exp_of(token), "alice"

    topic = "oauth-reauth-" + uuid.uuid4().hex[:8]
    logger = logging.getLogger("rdkafka")
    logger.setLevel(logging.DEBUG)
    captured = Captured()
    logger.addHandler(captured)
    logger.propagate = False
    errors = []

    def error_cb(e):
        errors.append(e)
        calls.append("%.2f error %s" % (time.time(), e.str()))

    extra = {"error_cb": error_cb, "debug": "security,broker", "logger": logger}
    p = Producer(conf(bootstrap, oauth_cb, **extra))
    c = Consumer(conf(bootstrap, oauth_cb, **dict(extra, **{
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
    auth_errors = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    print("reauth: sent %d, consumed %d, tokens used %d, re-authentications %d, auth errors %d"
          % (sent, len(got), len(used), len(renewed), len(auth_errors)))
    for line in calls:
        print("  " + line)


if __name__ == "__main__":
    mode, bootstrap = sys.argv[1:3]
    if mode == "matrix":
        matrix(bootstrap, *sys.argv[3:6])
    elif mode == "roundtrip":
        confluent_round_trip(bootstrap, sys.argv[3])
    elif mode == "reauth":
        reauth(bootstrap, float(sys.argv[3]), sys.argv[4].split(","))
    else:
        raise SystemExit("unknown mode " + mode)
