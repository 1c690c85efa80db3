"""confluent-kafka's schema registry client and Avro serializers against
weir serve: the registry on Weir's HTTP listener, the records through its
Kafka listener. Run by crates/weir-cli/tests/schema_registry.rs as

    python_schema_registry.py BOOTSTRAP REGISTRY_URL write
        registers (by serializing) two compatible versions of an Avro
        record, produces 10 records with each, consumes them back with
        AvroDeserializer (the reader schema filling the new field's
        default in old records), checks the wire format's schema ids, and
        sees an incompatible version refused with 409
    python_schema_registry.py BOOTSTRAP REGISTRY_URL read
        with a fresh client (no cache), deserializes the 20 records again

Prints `ok: ...` lines, `refused STATUS CODE MESSAGE` for the 409, and
`ids V1 V2` (the schema ids in the records); exits non-zero on a failed
check."""

import json
import struct
import sys
from functools import partial

from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from schema_clients import check, consume_from_start

bootstrap, url, mode = sys.argv[1], sys.argv[2], sys.argv[3]
TOPIC = "payments"
SUBJECT = f"{TOPIC}-value"

V1 = json.dumps({
    "type": "record", "name": "Payment", "namespace": "weir.test",
    "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "long"}],
})
V2 = json.dumps({
    "type": "record", "name": "Payment", "namespace": "weir.test",
    "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "long"},
               {"name": "currency", "type": "string", "default": "EUR"}],
})
# Breaking under BACKWARD: a new field without a default.
V3 = json.dumps({
    "type": "record", "name": "Payment", "namespace": "weir.test",
    "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "long"},
               {"name": "currency", "type": "string", "default": "EUR"},
               {"name": "merchant", "type": "string"}],
})


ctx = partial(SerializationContext, TOPIC, MessageField.VALUE)
consume_all = partial(consume_from_start, bootstrap, TOPIC)


def read_back(sr, values):
    """Deserializes every record with the V2 reader schema."""
    de = AvroDeserializer(sr, V2)
    got = [de(v, ctx()) for v in values]
    for i, p in enumerate(got):
        check(p["id"] == f"p{i}" and p["amount"] == i * 100,
              f"record {i} reads back: {p}")
        want = "EUR" if i < 10 else "USD"
        check(p["currency"] == want, f"record {i} currency {p['currency']} is {want}")
    # And with the writer's own schema (no reader schema given).
    plain = AvroDeserializer(sr)
    first = plain(values[0], ctx())
    check("currency" not in first, f"the writer's schema has no currency: {first}")
    return got


def write():
    sr = SchemaRegistryClient({"url": url})
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    ser1 = AvroSerializer(sr, V1)
    for i in range(10):
        p.produce(TOPIC, value=ser1({"id": f"p{i}", "amount": i * 100}, ctx()))
    ser2 = AvroSerializer(sr, V2)
    for i in range(10, 20):
        p.produce(TOPIC, value=ser2({"id": f"p{i}", "amount": i * 100, "currency": "USD"}, ctx()))
    check(p.flush(30) == 0, "every record delivered")
    print("ok: produced 20 records with two schema versions", flush=True)

    versions = sr.get_versions(SUBJECT)
    check(versions == [1, 2], f"versions {versions}")
    latest = sr.get_latest_version(SUBJECT)
    check(latest.version == 2, f"latest {latest.version}")
    v1 = sr.get_version(SUBJECT, 1)
    check(json.loads(v1.schema.schema_str) == json.loads(V1), "version 1 is V1")
    found = sr.lookup_schema(SUBJECT, Schema(V2, "AVRO"))
    check(found.version == 2 and found.schema_id == latest.schema_id, "lookup finds V2")

    values = consume_all(20)
    ids = [struct.unpack(">bI", v[:5]) for v in values]
    check(all(magic == 0 for magic, _ in ids), "Confluent's magic byte")
    check({i for _, i in ids[:10]} == {v1.schema_id}, f"old records carry V1's id: {ids[:10]}")
    check({i for _, i in ids[10:]} == {latest.schema_id}, f"new records carry V2's id: {ids[10:]}")
    print(f"ids {v1.schema_id} {latest.schema_id}", flush=True)
    read_back(sr, values)
    print("ok: consumed and deserialized 20 records, defaults filled", flush=True)

    check(not sr.test_compatibility(SUBJECT, Schema(V3, "AVRO")), "V3 tests incompatible")
    check(sr.get_compatibility() == "BACKWARD", "global level")
    try:
        sr.register_schema(SUBJECT, Schema(V3, "AVRO"))
        check(False, "the incompatible schema is refused")
    except SchemaRegistryError as e:
        print(f"refused {e.http_status_code} {e.error_code} {e.error_message}", flush=True)
        check(e.http_status_code == 409 and e.error_code == 409, "409 with code 409")
    check(sr.get_versions(SUBJECT) == [1, 2], "nothing registered by the refusal")
    print("ok: an incompatible schema was refused", flush=True)


def read():
    sr = SchemaRegistryClient({"url": url})
    read_back(sr, consume_all(20))
    print("ok: a fresh client deserialized the 20 records", flush=True)


{"write": write, "read": read}[mode]()
