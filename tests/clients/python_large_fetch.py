"""Large records over several partitions, read back within a fetch limit.

Usage: python_large_fetch.py BOOTSTRAP TOPIC PARTITIONS PER_PARTITION RECORD_BYTES

Produces PER_PARTITION records of RECORD_BYTES to each partition, then reads
them all back with confluent-kafka (librdkafka drops a response larger than
receive.message.max.bytes and fetches the same thing again, forever, so a
broker that overshoots fetch.max.bytes makes this consumer time out) and with
kafka-python, each with fetch.max.bytes=1000000. Prints one line per client.
"""

import sys
import time

from confluent_kafka import Consumer, Producer
from kafka import KafkaConsumer, TopicPartition

bootstrap, topic = sys.argv[1], sys.argv[2]
partitions, per_partition, record_bytes = (int(a) for a in sys.argv[3:6])
total = partitions * per_partition
FETCH_MAX_BYTES = 1_000_000
DEADLINE_S = 60

producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
for p in range(partitions):
    for i in range(per_partition):
        value = bytes([65 + p]) * record_bytes
        producer.produce(topic, value=value, key=f"{p}-{i}".encode(), partition=p)
        producer.poll(0)
assert producer.flush(30) == 0, "producer did not deliver everything"

consumer = Consumer(
    {
        "bootstrap.servers": bootstrap,
        "group.id": f"{topic}-confluent",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "fetch.max.bytes": FETCH_MAX_BYTES,
        # librdkafka's floor for this is fetch.max.bytes + 512.
        "receive.message.max.bytes": FETCH_MAX_BYTES + 512,
        "max.partition.fetch.bytes": FETCH_MAX_BYTES,
    }
)
consumer.subscribe([topic])
seen = {}
deadline = time.monotonic() + DEADLINE_S
while len(seen) < total and time.monotonic() < deadline:
    msg = consumer.poll(0.5)
    if msg is None:
        continue
    if msg.error():
        raise SystemExit(f"confluent consumer error: {msg.error()}")
    assert len(msg.value()) == record_bytes, len(msg.value())
    assert msg.value()[0] == 65 + msg.partition()
    seen[(msg.partition(), msg.offset())] = True
consumer.close()
if len(seen) != total:
    raise SystemExit(f"confluent consumer: only {len(seen)} of {total} records in {DEADLINE_S} s")
print(f"confluent consumer: {len(seen)} records")

kp = KafkaConsumer(
    bootstrap_servers=bootstrap,
    auto_offset_reset="earliest",
    enable_auto_commit=False,
    fetch_max_bytes=FETCH_MAX_BYTES,
    max_partition_fetch_bytes=FETCH_MAX_BYTES,
    consumer_timeout_ms=10_000,
)
kp.assign([TopicPartition(topic, p) for p in range(partitions)])
kp.seek_to_beginning()
count = 0
deadline = time.monotonic() + DEADLINE_S
for msg in kp:
    assert len(msg.value) == record_bytes
    count += 1
    if count == total or time.monotonic() > deadline:
        break
kp.close()
if count != total:
    raise SystemExit(f"kafka-python consumer: only {count} of {total} records")
print(f"kafka-python consumer: {count} records")
