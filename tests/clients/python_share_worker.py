"""A confluent-kafka (librdkafka) share consumer that works a queue on Weir.

Usage: python_share_worker.py BOOTSTRAP GROUP TOPIC MODE [earliest] [KEY=VALUE...]

A ShareConsumer in explicit acknowledgement mode subscribes to TOPIC and
polls until a line arrives on stdin, then closes (committing what it
acknowledged and leaving the group). For every record it prints
"got PARTITION OFFSET DELIVERY_COUNT VALUE TIME" (TIME: the system's
monotonic clock, comparable across processes) and then, by MODE:

- accept: acknowledges it ACCEPT, commits, and prints "accepted P O TIME"
  once commit_sync said the broker took it, or "uncertain P O TIME" when
  the commit failed (the broker may have made it durable before it died);
- release / reject: acknowledges it RELEASE / REJECT and commits;
- hold: acknowledges nothing and stops polling once it holds a record
  (the test kills the process while it holds them).

With "earliest", the group's share.auto.offset.reset is set to earliest
first (IncrementalAlterConfigs on the GROUP resource); KEY=VALUE pairs
are added to the consumer's configuration. Errors the client
reports are printed as "error ...".
"""

import sys
import threading
import time

from confluent_kafka import AcknowledgeType, KafkaException, ShareConsumer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

bootstrap, group, topic, mode = sys.argv[1:5]

extra = dict(a.split("=", 1) for a in sys.argv[5:] if "=" in a)
if "earliest" in sys.argv[5:]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(
        ResourceType.GROUP,
        group,
        incremental_configs=[
            ConfigEntry(
                "share.auto.offset.reset",
                "earliest",
                incremental_operation=AlterConfigOpType.SET,
            )
        ],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)
    print("configured", flush=True)

consumer = ShareConsumer(
    {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "share.acknowledgement.mode": "explicit",
        "error_cb": lambda err: print(f"error {err.name()} {err.str()}", flush=True),
        **extra,
    }
)
consumer.subscribe([topic])
print("subscribed", flush=True)

stop = threading.Event()


def wait_for_stdin():
    sys.stdin.readline()
    stop.set()


threading.Thread(target=wait_for_stdin, daemon=True).start()

kinds = {
    "accept": AcknowledgeType.ACCEPT,
    "release": AcknowledgeType.RELEASE,
    "reject": AcknowledgeType.REJECT,
}
holding = False
while not stop.is_set():
    if holding:
        stop.wait(0.2)
        continue
    try:
        msgs = consumer.poll(0.2)
    except KafkaException as e:
        print(f"error {e.args[0].name()} {e.args[0].str()}", flush=True)
        continue
    got = []
    for m in msgs or []:
        if m.error():
            print(f"error {m.error().name()} {m.error().str()}", flush=True)
            continue
        value = (m.value() or b"").decode()
        print(
            f"got {m.partition()} {m.offset()} {m.delivery_count()} {value} {time.monotonic()}",
            flush=True,
        )
        got.append(m)
    if not got:
        continue
    if mode == "hold":
        print(f"holding {len(got)}", flush=True)
        holding = True
        continue
    try:
        for m in got:
            consumer.acknowledge(m, kinds[mode])
        results = consumer.commit_sync(30)
    except Exception as e:  # KafkaException, IllegalStateException, ...
        # No answer (the server went away, or the session with it): the
        # acknowledgement may or may not have been made durable.
        print(f"error commit-exception {type(e).__name__} {e}", flush=True)
        for m in got:
            print(f"uncertain {m.partition()} {m.offset()} {time.monotonic()}", flush=True)
        continue
    failed = {tp.partition for tp, err in results.items() if err is not None}
    for tp, err in results.items():
        if err is not None:
            print(f"error commit {tp.partition} {err}", flush=True)
    if mode == "accept":
        for m in got:
            word = "uncertain" if m.partition() in failed else "accepted"
            print(f"{word} {m.partition()} {m.offset()} {time.monotonic()}", flush=True)

consumer.close()
print("closed", flush=True)
