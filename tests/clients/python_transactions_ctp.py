"""Consume-transform-produce with confluent-kafka's transactional API.

Usage: python_transactions_ctp.py BOOTSTRAP TOPIC_IN TOPIC_OUT

TOPIC_IN holds v0..v9. A processor reads some of them, writes their
upper-case forms and sends its consumer offsets in a transaction that it
aborts; a new processor in the same group then reads from the committed
offsets (none), writes every record's upper-case form and commits with
its offsets; a third finds nothing left. read_committed readers of
TOPIC_OUT must see V0..V9 exactly once. Prints one line per finding.
"""

import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition

bootstrap, topic_in, topic_out = sys.argv[1], sys.argv[2], sys.argv[3]
GROUP = "ctp-group"
TIMEOUT_S = 20


def consumer(group, isolation="read_committed"):
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    })


def read_to_end(c, topic, limit=None):
    """Messages of `topic` from where the group stands to every partition's end."""
    c.subscribe([topic])
    partitions = len(c.list_topics(topic, timeout=10).topics[topic].partitions)
    at_end, out = set(), []
    deadline = time.monotonic() + TIMEOUT_S
    while len(at_end) < partitions and time.monotonic() < deadline:
        if limit is not None and len(out) >= limit:
            break
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                at_end.add(m.partition())
                continue
            raise SystemExit(f"consumer error: {m.error()}")
        out.append(m)
    return out


def process(producer, c, messages, commit):
    producer.begin_transaction()
    for m in messages:
        producer.produce(topic_out, key=m.key(), value=m.value().upper())
    producer.send_offsets_to_transaction(
        c.position(c.assignment()), c.consumer_group_metadata(), TIMEOUT_S
    )
    if commit:
        producer.commit_transaction(TIMEOUT_S)
    else:
        producer.flush(TIMEOUT_S)
        producer.abort_transaction(TIMEOUT_S)


p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "tx-ctp"})
p.init_transactions(TIMEOUT_S)

c = consumer(GROUP)
first = read_to_end(c, topic_in, limit=4)
process(p, c, first, commit=False)
c.close()
print(f"ctp aborted round: {len(first)} read")

c = consumer(GROUP)
every = read_to_end(c, topic_in)
process(p, c, every, commit=True)
committed = c.committed(c.assignment(), timeout=10)
c.close()
print(f"ctp committed round: {len(every)} read")
print("ctp committed offsets:", sum(tp.offset for tp in committed))

c = consumer(GROUP)
left = read_to_end(c, topic_in)
c.close()
print(f"ctp left to read: {len(left)}")

r = consumer("ctp-reader")
out = sorted(m.value().decode() for m in read_to_end(r, topic_out))
r.close()
print("ctp output read_committed:", ",".join(out))
u = consumer("ctp-reader-uncommitted", "read_uncommitted")
raw = read_to_end(u, topic_out)
u.close()
print(f"ctp output read_uncommitted: {len(raw)} records")
