"""KIP-447's zombie fencing by group generation, with confluent-kafka.

Usage: python_kip447_zombie.py BOOTSTRAP TOPIC_IN TOPIC_OUT

TOPIC_IN has two partitions holding five records each. Processor A (its
own consumer and its own transactional producer, as KIP-447 allows) reads
all ten, writes their upper-case forms in a transaction and keeps its
consumer's group metadata. Processor B then joins the group: a new
generation, and A's partitions are split between the two. A, now a zombie
of the old generation, tries to commit its offsets in its transaction
with the old metadata: the coordinator refuses (ILLEGAL_GENERATION) and A
aborts. A leaves; B, owning both partitions, processes all ten from the
committed offsets (none) and commits. read_committed readers of TOPIC_OUT
see each output exactly once, and the group's offsets are B's. Prints
one line per finding.
"""

import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

bootstrap, topic_in, topic_out = sys.argv[1], sys.argv[2], sys.argv[3]
GROUP = "kip447-group"
TIMEOUT_S = 20


def consumer():
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": GROUP,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        # A member learns of a rebalance from its next heartbeat: sooner.
        "heartbeat.interval.ms": 300,
    })


def producer(transactional_id):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
    p.init_transactions(TIMEOUT_S)
    return p


def poll_until(consumers, done, seen):
    """Polls every consumer until `done()`, keeping each record once by
    (partition, offset) in `seen`; fails after TIMEOUT_S."""
    deadline = time.monotonic() + TIMEOUT_S
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit("timed out polling")
        for c in consumers:
            m = c.poll(0.1)
            if m is None:
                continue
            if m.error():
                raise SystemExit(f"consumer error: {m.error()}")
            seen.setdefault((m.partition(), m.offset()), m)


def transform(p, messages):
    for m in messages:
        p.produce(topic_out, key=m.key(), value=m.value().upper())


# A reads everything as the group's only member.
a, pa = consumer(), producer("kip447-a")
a.subscribe([topic_in])
seen_a = {}
poll_until([a], lambda: len(seen_a) == 10, seen_a)
pa.begin_transaction()
transform(pa, seen_a.values())
old_generation = a.consumer_group_metadata()
old_positions = [TopicPartition(topic_in, p, 5) for p in (0, 1)]
print("A read", len(seen_a))

# B joins: the group rebalances to a new generation with both members.
b, pb = consumer(), producer("kip447-b")
b.subscribe([topic_in])
ignored = {}
poll_until(
    [a, b],
    lambda: len(a.assignment()) == 1 and len(b.assignment()) == 1,
    ignored,
)
print("rebalanced: A has", len(a.assignment()), "B has", len(b.assignment()))

# A commits its offsets with the old generation's metadata: refused.
try:
    pa.send_offsets_to_transaction(old_positions, old_generation, TIMEOUT_S)
    pa.commit_transaction(TIMEOUT_S)
    print("zombie A: committed")
except KafkaException as e:
    err = e.args[0]
    print("zombie A: refused", err.name(), "abortable" if err.txn_requires_abort() else "fatal")
    pa.abort_transaction(TIMEOUT_S)
    print("zombie A: aborted")
a.close()

# B alone: both partitions, from the committed offsets (none).
seen_b = {}
poll_until(
    [b],
    lambda: len(b.assignment()) == 2 and all((p, o) in seen_b for p in (0, 1) for o in range(5)),
    seen_b,
)
pb.begin_transaction()
transform(pb, [m for (p, o), m in sorted(seen_b.items()) if o < 5])
pb.send_offsets_to_transaction(
    [TopicPartition(topic_in, p, 5) for p in (0, 1)], b.consumer_group_metadata(), TIMEOUT_S
)
pb.commit_transaction(TIMEOUT_S)
print("B committed", len(seen_b))
committed = b.committed([TopicPartition(topic_in, p) for p in (0, 1)], TIMEOUT_S)
print("group offsets", ",".join(str(tp.offset) for tp in committed))
b.close()

# Read back what is committed.
r = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "kip447-reader",
    "isolation.level": "read_committed",
    "auto.offset.reset": "earliest",
    "enable.partition.eof": True,
})
r.subscribe([topic_out])
partitions = len(r.list_topics(topic_out, timeout=10).topics[topic_out].partitions)
values, at_end = [], set()
deadline = time.monotonic() + TIMEOUT_S
while len(at_end) < partitions and time.monotonic() < deadline:
    m = r.poll(0.5)
    if m is None:
        continue
    if m.error():
        if m.error().code() == -191:  # _PARTITION_EOF
            at_end.add(m.partition())
            continue
        raise SystemExit(f"consumer error: {m.error()}")
    values.append(m.value().decode())
r.close()
print("output read_committed:", ",".join(sorted(values)))
