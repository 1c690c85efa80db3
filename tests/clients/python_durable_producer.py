"""An idempotent confluent-kafka producer with acks=all that sends N numbered
records to a topic while the broker is killed and restarted under it, and
prints one line per delivery report: "OK partition offset value" or
"ERR value error". Run by crates/weir-cli/tests/kill9_kafka.rs:
python_durable_producer.py BOOTSTRAP TOPIC N."""

import sys
import time

from confluent_kafka import Producer

bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = Producer({
    "bootstrap.servers": bootstrap,
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 2,
    "message.timeout.ms": 60000,
    "reconnect.backoff.ms": 20,
    "reconnect.backoff.max.ms": 200,
})


def report(err, msg):
    if err:
        print(f"ERR {msg.value().decode()} {err}", flush=True)
    else:
        print(f"OK {msg.partition()} {msg.offset()} {msg.value().decode()}", flush=True)


for i in range(n):
    while True:
        try:
            p.produce(topic, key=f"k{i % 7}", value=f"v-{i}", on_delivery=report)
            break
        except BufferError:
            p.poll(0.05)
    p.poll(0)
    if i % 50 == 0:
        time.sleep(0.01)
left = p.flush(90)
print(f"DONE {left}", flush=True)
