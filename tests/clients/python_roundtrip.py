"""Produces keyed records with headers through one Python Kafka client and
reads them back through both, checking keys, values, headers, timestamps and
per-partition order. Run by crates/weir-kafka/tests/python.rs against a Weir
server: python_roundtrip.py BOOTSTRAP TOPIC PRODUCER CODEC N."""

import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition

bootstrap, topic, producer_name, codec, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
# "confluent+idempotent" and "kafka-python+idempotent" turn on idempotence.
producer_name, _, mode = producer_name.partition("+")
idempotent = mode == "idempotent"
PARTITIONS = 6
BASE_TS = 1_700_000_000_000


def expected():
    return [(f"key-{i % 50}".encode(), f"value-{i}".encode(), BASE_TS + i) for i in range(n)]


def produce_confluent():
    p = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "compression.type": codec,
        "partitioner": "murmur2_random",
        "linger.ms": 5,
        "enable.idempotence": idempotent,
    })
    errors = []
    for key, value, ts in expected():
        p.produce(topic, key=key, value=value, headers=[("h", key)], timestamp=ts,
                  on_delivery=lambda err, msg: err and errors.append(err))
        p.poll(0)
    assert p.flush(30) == 0, "unflushed records"
    assert not errors, errors[:3]


def produce_kafka_python():
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                      compression_type=None if codec == "none" else codec, linger_ms=5,
                      enable_idempotence=idempotent)
    futures = [p.send(topic, key=key, value=value, headers=[("h", key)], timestamp_ms=ts)
               for key, value, ts in expected()]
    p.flush(30)
    for f in futures:
        f.get(timeout=30)
    p.close()


def consume_confluent():
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got, deadline = [], time.time() + 30
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        assert not m.error(), m.error()
        got.append((m.partition(), m.offset(), m.key(), m.value(), m.timestamp()[1], m.headers()))
    c.close()
    return got


def consume_kafka_python():
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    c.assign([KpTopicPartition(topic, p) for p in range(PARTITIONS)])
    c.seek_to_beginning()
    got = []
    for m in c:
        got.append((m.partition, m.offset, m.key, m.value, m.timestamp, m.headers))
        if len(got) == n:
            break
    c.close()
    return got


def check(name, got):
    assert len(got) == n, f"{name}: {len(got)} of {n} records"
    want = {value: (key, ts) for key, value, ts in expected()}
    last = {}
    for partition, offset, key, value, ts, headers in got:
        assert want[value] == (key, ts), f"{name}: {value} came with {key} {ts}"
        assert [(h[0], bytes(h[1])) for h in headers] == [("h", key)], f"{name}: headers {headers}"
        i = int(value.split(b"-")[1])
        assert last.get(partition, (-1, -1))[1] < i, f"{name}: order broken on partition {partition}"
        assert last.get(partition, (-1, -1))[0] < offset
        last[partition] = (offset, i)
    print(f"{name}: {len(got)} records on {len(last)} partitions")


# "none" only reads back what another client (kafkajs) produced.
{"confluent": produce_confluent, "kafka-python": produce_kafka_python, "none": lambda: None}[producer_name]()
check("confluent consumer", consume_confluent())
check("kafka-python consumer", consume_kafka_python())
