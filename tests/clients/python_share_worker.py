"""A confluent-kafka (librdkafka) share consumer that works a queue on Weir.

Usage: python_share_worker.py BOOTSTRAP GROUP TOPIC MODE

A ShareConsumer in explicit acknowledgement mode subscribes to TOPIC and
polls until a line arrives on stdin, then closes (committing what it
acknowledged and leaving the group). For every record it prints
"got PARTITION OFFSET DELIVERY_COUNT VALUE" and then, by MODE:

- accept: acknowledges it ACCEPT, commits, and prints "accepted P O" once
  commit_sync said the broker took it;
- release / reject: acknowledges it RELEASE / REJECT and commits;
- hold: acknowledges nothing and stops polling once it holds a record
  (the test kills the process while it holds them).

Errors the client reports are printed as "error ...".
"""

import sys
import threading

from confluent_kafka import AcknowledgeType, KafkaException, ShareConsumer

bootstrap, group, topic, mode = sys.argv[1:5]

consumer = ShareConsumer(
    {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "share.acknowledgement.mode": "explicit",
        "error_cb": lambda err: print(f"error {err.name()} {err.str()}", flush=True),
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
        print(f"got {m.partition()} {m.offset()} {m.delivery_count()} {value}", flush=True)
        got.append(m)
    if not got:
        continue
    if mode == "hold":
        print(f"holding {len(got)}", flush=True)
        holding = True
        continue
    for m in got:
        consumer.acknowledge(m, kinds[mode])
    results = consumer.commit_sync(30)
    failed = {tp.partition for tp, err in results.items() if err is not None}
    for tp, err in results.items():
        if err is not None:
            print(f"error commit {tp.partition} {err}", flush=True)
    if mode == "accept":
        for m in got:
            if m.partition() not in failed:
                print(f"accepted {m.partition()} {m.offset()}", flush=True)

consumer.close()
print("closed", flush=True)
