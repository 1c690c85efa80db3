"""confluent-kafka against a topic with validation on write in weir serve.
Run by crates/weir-cli/tests/schema_validation.rs as

    python_schema_validation.py BOOTSTRAP REGISTRY_URL TOPIC

Creates the topic, then turns confluent.value.schema.validation on with
AdminClient's incremental_alter_configs. Produces 5 records serialized
by AvroSerializer (accepted), then one plain-bytes record and one framed
with an id of another subject (each refused: the delivery report carries
INVALID_RECORD, or INVALID_MSG, Kafka's CORRUPT_MESSAGE, from a client
speaking Produce below v8), then consumes the topic and checks it holds
exactly the 5 good records. Prints `ok: ...` lines and `refused CODE` per refusal; exits
non-zero on a failed check."""

import json
import struct
import sys

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                  ConfigResource, NewTopic)
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from schema_clients import check

bootstrap, url, topic = sys.argv[1], sys.argv[2], sys.argv[3]

PAYMENT = json.dumps({
    "type": "record", "name": "Payment", "namespace": "weir.test",
    "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "long"}],
})


admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics([NewTopic(topic, 1)]).values():
    f.result(timeout=10)
entry = ConfigEntry("confluent.value.schema.validation", "true",
                    incremental_operation=AlterConfigOpType.SET)
resource = ConfigResource("topic", topic, incremental_configs=[entry])
for f in admin.incremental_alter_configs([resource]).values():
    f.result(timeout=10)
print("ok: validation on", flush=True)

registry = SchemaRegistryClient({"url": url})
serializer = AvroSerializer(registry, PAYMENT)
ctx = SerializationContext(topic, MessageField.VALUE)
other = registry.register_schema("elsewhere-value", Schema(PAYMENT.replace("Payment", "Other"), "AVRO"))

producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
outcomes = []


def report(err, msg):
    outcomes.append(err)


for i in range(5):
    value = serializer({"id": f"p{i}", "amount": i}, ctx)
    producer.produce(topic, value=value, key=f"k{i}", on_delivery=report)
    producer.flush(10)
check(all(e is None for e in outcomes), f"good records delivered: {outcomes}")
print("ok: 5 serialized records accepted", flush=True)

bad = [b"plain text", b"\x00" + struct.pack(">I", other) + b"\x04p1\x02"]
for value in bad:
    outcomes.clear()
    # One record per flush: a refused batch refuses all it holds.
    producer.produce(topic, value=value, key="bad", on_delivery=report)
    producer.flush(10)
    check(len(outcomes) == 1 and outcomes[0] is not None, f"bad record refused: {outcomes}")
    code = outcomes[0].code()
    check(code in (KafkaError.INVALID_RECORD, KafkaError.INVALID_MSG), f"code {outcomes[0]}")
    print(f"refused {outcomes[0].name()}", flush=True)

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "validation-check",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
consumer.subscribe([topic])
seen = []
while len(seen) < 5:
    msg = consumer.poll(10)
    check(msg is not None, f"only {len(seen)} records consumed")
    check(msg.error() is None, f"consume error {msg.error()}")
    seen.append(msg.value())
extra = consumer.poll(2)
check(extra is None, "nothing but the 5 good records is in the topic")
check(all(v[0] == 0 for v in seen), "every stored record is in the wire format")
consumer.close()
print("ok: the topic holds the 5 good records", flush=True)
