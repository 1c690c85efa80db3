"""Produces and consumes over an SSL listener with both Python Kafka
clients (confluent-kafka's librdkafka on OpenSSL, kafka-python on Python's
ssl module), trusting the test CA and, when given, presenting a client
certificate. Checks that Metadata names the SSL listener's port. Run by
crates/weir-kafka/tests/tls_clients.rs:
python_tls.py BOOTSTRAP TOPIC N CA_PEM [CLIENT_PEM CLIENT_KEY]."""

import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition

bootstrap, topic, n, ca = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
client = sys.argv[5:7] if len(sys.argv) > 5 else None
port = int(bootstrap.rsplit(":", 1)[1])

confluent_tls = {"security.protocol": "SSL", "ssl.ca.location": ca}
python_tls = {"security_protocol": "SSL", "ssl_cafile": ca}
if client:
    confluent_tls.update({"ssl.certificate.location": client[0], "ssl.key.location": client[1]})
    python_tls.update({"ssl_certfile": client[0], "ssl_keyfile": client[1]})

# Metadata through the SSL port names the SSL port.
brokers = AdminClient({"bootstrap.servers": bootstrap, **confluent_tls}).list_topics(timeout=20).brokers
assert [b.port for b in brokers.values()] == [port], brokers
print(f"confluent metadata: broker port {port}")

values = [f"{name}-{i}".encode() for name in ("confluent", "kafka-python") for i in range(n)]

p = Producer({"bootstrap.servers": bootstrap, "acks": "all", **confluent_tls})
errors = []
for v in values[:n]:
    p.produce(topic, value=v, on_delivery=lambda err, msg: err and errors.append(err))
    p.poll(0)
assert p.flush(30) == 0 and not errors, errors[:3]

kp = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **python_tls)
for v in values[n:]:
    kp.send(topic, value=v)
kp.flush(30)
kp.close()


def read_confluent():
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"tls-{time.time()}",
                  "enable.auto.commit": False, **confluent_tls})
    c.assign([TopicPartition(topic, 0, 0)])
    got, deadline = [], time.time() + 60
    while len(got) < len(values) and time.time() < deadline:
        m = c.poll(1)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    return got


def read_kafka_python():
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **python_tls)
    tp = KpTopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    got, deadline = [], time.time() + 60
    while len(got) < len(values) and time.time() < deadline:
        for records in c.poll(timeout_ms=1000).values():
            got.extend(r.value for r in records)
    c.close()
    return got


assert read_confluent() == values, "confluent read back something else"
print(f"confluent consumer: {len(values)} records")
assert read_kafka_python() == values, "kafka-python read back something else"
print(f"kafka-python consumer: {len(values)} records")
