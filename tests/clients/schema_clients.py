"""What the schema registry's client scripts share (python_schema_registry*.py,
python_schema_validation.py): a check that ends the script with a
`failed: ...` line, and reading a topic's partition 0 from its start."""

import sys

from confluent_kafka import Consumer, TopicPartition


def check(cond, what):
    if not cond:
        print(f"failed: {what}", flush=True)
        sys.exit(1)


def consume_from_start(bootstrap, topic, n):
    """The values of the first `n` records of `topic`'s partition 0."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    while len(out) < n:
        m = c.poll(10)
        check(m is not None, f"record {len(out)} arrives within 10 s")
        check(m.error() is None, f"no consume error: {m.error() if m else ''}")
        out.append(m.value())
    c.close()
    return out
