"""confluent-kafka's JSONSerializer and JSONDeserializer against weir
serve: the registry on Weir's HTTP listener, the records through its
Kafka listener. Run by crates/weir-cli/tests/schema_registry.rs as

    python_schema_registry_json.py BOOTSTRAP REGISTRY_URL

Registers (by serializing) two compatible versions of a JSON Schema with a
closed content model (the second adds an optional property), produces 10
records with each, consumes them back and deserializes them with the
writer's schema fetched by id, checks the wire format's schema ids, sees a
record that breaks the schema refused by the serializer, and an
incompatible version (the new property made required) refused with 409.

Prints `ok: ...` lines, `refused STATUS CODE MESSAGE` for the 409 and
`ids V1 V2`; exits non-zero on a failed check."""

import json
import struct
import sys
from functools import partial

from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

from schema_clients import check, consume_from_start

bootstrap, url = sys.argv[1], sys.argv[2]
TOPIC = "shipments"
SUBJECT = f"{TOPIC}-value"


def schema(properties, required):
    return json.dumps({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Shipment", "type": "object",
        "properties": properties, "required": required,
        "additionalProperties": False,
    })


BASE = {"id": {"type": "string"}, "weight": {"type": "integer", "minimum": 0}}
V1 = schema(BASE, ["id", "weight"])
# Compatible under BACKWARD: a new optional property, the writer closed.
V2 = schema({**BASE, "carrier": {"type": "string"}}, ["id", "weight"])
# Breaking: the new property required.
V3 = schema({**BASE, "carrier": {"type": "string"}}, ["id", "weight", "carrier"])


ctx = partial(SerializationContext, TOPIC, MessageField.VALUE)
consume_all = partial(consume_from_start, bootstrap, TOPIC)


sr = SchemaRegistryClient({"url": url})
p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
ser1 = JSONSerializer(V1, sr)
for i in range(10):
    p.produce(TOPIC, value=ser1({"id": f"s{i}", "weight": i}, ctx()))
ser2 = JSONSerializer(V2, sr)
for i in range(10, 20):
    p.produce(TOPIC, value=ser2({"id": f"s{i}", "weight": i, "carrier": "rail"}, ctx()))
check(p.flush(30) == 0, "every record delivered")
print("ok: produced 20 records with two JSON Schema versions", flush=True)

try:
    ser2({"id": "bad", "weight": -1}, ctx())
    check(False, "a record breaking the schema is refused")
except SerializationError:
    pass

check(sr.get_versions(SUBJECT) == [1, 2], f"versions {sr.get_versions(SUBJECT)}")
v1 = sr.get_version(SUBJECT, 1)
v2 = sr.get_latest_version(SUBJECT)
check(v1.schema.schema_type == "JSON", f"type {v1.schema.schema_type}")
check(json.loads(v1.schema.schema_str) == json.loads(V1), "version 1 is V1")

values = consume_all(20)
ids = [struct.unpack(">bI", v[:5]) for v in values]
check(all(magic == 0 for magic, _ in ids), "Confluent's magic byte")
check({i for _, i in ids[:10]} == {v1.schema_id}, f"old records carry V1's id: {ids[:10]}")
check({i for _, i in ids[10:]} == {v2.schema_id}, f"new records carry V2's id: {ids[10:]}")
print(f"ids {v1.schema_id} {v2.schema_id}", flush=True)

# A fresh client, no schema given: the writer's schema comes by id.
de = JSONDeserializer(None, schema_registry_client=SchemaRegistryClient({"url": url}))
got = [de(v, ctx()) for v in values]
for i, s in enumerate(got):
    check(s["id"] == f"s{i}" and s["weight"] == i, f"record {i} reads back: {s}")
    check(("carrier" in s) == (i >= 10), f"record {i}: {s}")
print("ok: consumed and deserialized 20 records", flush=True)

check(not sr.test_compatibility(SUBJECT, Schema(V3, "JSON")), "V3 tests incompatible")
try:
    sr.register_schema(SUBJECT, Schema(V3, "JSON"))
    check(False, "the incompatible schema is refused")
except SchemaRegistryError as e:
    print(f"refused {e.http_status_code} {e.error_code} {e.error_message}", flush=True)
    check(e.http_status_code == 409 and e.error_code == 409, "409 with code 409")
check(sr.get_versions(SUBJECT) == [1, 2], "nothing registered by the refusal")
print("ok: an incompatible schema was refused", flush=True)
