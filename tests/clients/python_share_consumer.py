"""A confluent-kafka (librdkafka) share consumer against Weir (KIP-932).

Usage: python_share_consumer.py BOOTSTRAP GROUP TOPIC...

Creates a ShareConsumer in GROUP, subscribes to the topics, and polls until
a line arrives on stdin (the test reads the group's state from the broker
meanwhile), then closes the consumer, which leaves the group. Prints one
line per event the test judges: "subscribed", every error the client
reports ("error ..."), what poll returned ("message ...", "poll-error ..."),
and "closed". Weir serves the share groups' membership but not ShareFetch
yet; what the client does about that is what the test reports.
"""

import logging
import sys
import threading

from confluent_kafka import KafkaException, ShareConsumer

bootstrap, group, topics = sys.argv[1], sys.argv[2], sys.argv[3:]

logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)
logger = logging.getLogger("librdkafka")


def on_error(err):
    print(f"error {err.name()} {err.str()}", flush=True)


consumer = ShareConsumer(
    {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": "weir-share-test",
        "error_cb": on_error,
        "logger": logger,
        "debug": "cgrp,protocol,broker",
    }
)
consumer.subscribe(topics)
print("subscribed", flush=True)

stop = threading.Event()


def wait_for_stdin():
    sys.stdin.readline()
    stop.set()


threading.Thread(target=wait_for_stdin, daemon=True).start()

seen = set()
polls = 0
while not stop.is_set() and polls < 600:
    polls += 1
    try:
        msgs = consumer.poll(0.2)
    except KafkaException as e:
        line = f"poll-error {e.args[0].name()} {e.args[0].str()}"
        if line not in seen:
            seen.add(line)
            print(line, flush=True)
        continue
    for m in msgs or []:
        if m.error():
            line = f"poll-error {m.error().name()} {m.error().str()}"
            if line not in seen:
                seen.add(line)
                print(line, flush=True)
        else:
            print(f"message {m.topic()} {m.partition()} {m.offset()}", flush=True)

consumer.close()
print("closed", flush=True)
