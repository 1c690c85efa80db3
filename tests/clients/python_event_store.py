"""The event store's log through a Kafka client: confluent-kafka reads the
records of the internal topic __weir_events (by assignment, or in a
consumer group) and tries to produce to it. Run by
crates/weir-kafka/tests/event_store.rs as

    python_event_store.py BOOTSTRAP read N      print the first N records
    python_event_store.py BOOTSTRAP group N     the same, as a group member
    python_event_store.py BOOTSTRAP produce     try to write one record

Records are printed one a line, bytes in hex so the Rust side compares them
exactly: `record OFFSET TIMESTAMP KEY VALUE NAME=VALUE;NAME=VALUE...`
(`-` for no key, value or headers). A produce prints `delivered OFFSET` or
`refused CODE NAME`."""

import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

TOPIC = "__weir_events"
bootstrap, mode = sys.argv[1], sys.argv[2]


def hexed(b):
    return "-" if b is None else (b.hex() or "-")


def print_record(m):
    headers = m.headers() or []
    header_text = ";".join(f"{name}={hexed(value)}" for name, value in headers) or "-"
    print(f"record {m.offset()} {m.timestamp()[1]} {hexed(m.key())} {hexed(m.value())} {header_text}")


def read(n, group):
    config = {"bootstrap.servers": bootstrap, "enable.auto.commit": False,
              "group.id": "event-store-readers" if group else "unused",
              "auto.offset.reset": "earliest"}
    c = Consumer(config)
    if group:
        c.subscribe([TOPIC])
    else:
        c.assign([TopicPartition(TOPIC, 0, 0)])
    got, deadline = 0, time.time() + 30
    while got < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            raise SystemExit(f"consumer error: {m.error()}")
        print_record(m)
        got += 1
    c.close()
    if got < n:
        raise SystemExit(f"read {got} of {n} records")


def produce():
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                  "message.timeout.ms": 10000, "enable.idempotence": False})
    outcome = []

    def done(err, msg):
        outcome.append(f"refused {err.code()} {err.name()}" if err else f"delivered {msg.offset()}")

    p.produce(TOPIC, key=b"acc-1", value=b"forged", headers=[("ce_id", b"forged")],
              on_delivery=done)
    p.flush(15)
    print(outcome[0] if outcome else "no answer")


if mode == "read":
    read(int(sys.argv[3]), group=False)
elif mode == "group":
    read(int(sys.argv[3]), group=True)
elif mode == "produce":
    produce()
else:
    raise SystemExit(f"unknown mode {mode}")
