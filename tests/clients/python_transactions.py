"""Transactional producers of confluent-kafka and kafka-python against Weir.

Usage: python_transactions.py BOOTSTRAP TOPIC_CK TOPIC_KP

Each client commits a transaction, aborts one and commits another; a
second confluent-kafka producer with the same transactional.id fences the
first, whose next commit fails. read_committed consumers must then see the
committed values only, read_uncommitted ones every value. Prints one line
per finding; the Rust test checks them.
"""

import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer

bootstrap, topic_ck, topic_kp = sys.argv[1], sys.argv[2], sys.argv[3]
TIMEOUT_S = 20


def confluent_values(topic, isolation):
    """Every value of every partition of `topic`, read up to its end."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"rc-{topic}-{isolation}",
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })
    meta = c.list_topics(topic, timeout=10).topics[topic]
    parts = [TopicPartition(topic, p, 0) for p in meta.partitions]
    c.assign(parts)
    at_end, values = set(), []
    deadline = time.monotonic() + TIMEOUT_S
    while len(at_end) < len(parts) and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                at_end.add(m.partition())
                continue
            raise SystemExit(f"consumer error: {m.error()}")
        values.append(m.value().decode())
    c.close()
    return sorted(values)


# confluent-kafka: commit, abort, commit.
p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "tx-confluent"})
p.init_transactions(TIMEOUT_S)
for name, values, commit in [("t1", ["c1", "c2", "c3"], True), ("t2", ["a1", "a2"], False), ("t3", ["c4"], True)]:
    p.begin_transaction()
    for i, v in enumerate(values):
        p.produce(topic_ck, value=v.encode(), key=str(i).encode())
    if commit:
        p.commit_transaction(TIMEOUT_S)
    else:
        p.flush(TIMEOUT_S)
        p.abort_transaction(TIMEOUT_S)
    print(f"confluent {name}: {'committed' if commit else 'aborted'}")

# A second instance fences the first: its next transaction cannot commit.
p2 = Producer({"bootstrap.servers": bootstrap, "transactional.id": "tx-confluent"})
p2.init_transactions(TIMEOUT_S)
try:
    p.begin_transaction()
    p.produce(topic_ck, value=b"zombie")
    p.commit_transaction(TIMEOUT_S)
    print("confluent zombie: committed")
except KafkaException as e:
    err = e.args[0]
    print(f"confluent zombie: fenced ({err.name()}, fatal={err.fatal()})")
p2.begin_transaction()
p2.produce(topic_ck, value=b"c5")
p2.commit_transaction(TIMEOUT_S)
print("confluent new instance: committed")

print("confluent read_committed:", ",".join(confluent_values(topic_ck, "read_committed")))
print("confluent read_uncommitted:", ",".join(confluent_values(topic_ck, "read_uncommitted")))

# kafka-python: commit, abort.
kp = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="tx-kafka-python")
kp.init_transactions()
kp.begin_transaction()
kp.send(topic_kp, b"k1")
kp.send(topic_kp, b"k2")
kp.commit_transaction()
kp.begin_transaction()
kp.send(topic_kp, b"kx")
kp.flush()
kp.abort_transaction()
kp.close(timeout=5)
print("kafka-python: committed and aborted")

kc = KafkaConsumer(
    bootstrap_servers=bootstrap,
    isolation_level="read_committed",
    auto_offset_reset="earliest",
    enable_auto_commit=False,
    consumer_timeout_ms=3000,
)
kc.assign([__import__("kafka").TopicPartition(topic_kp, p) for p in kc.partitions_for_topic(topic_kp)])
kc.seek_to_beginning()
print("kafka-python read_committed:", ",".join(sorted(m.value.decode() for m in kc)))
kc.close()
