"""confluent-kafka's ProtobufSerializer and ProtobufDeserializer against
weir serve: the registry on Weir's HTTP listener, the records through its
Kafka listener. Run by crates/weir-cli/tests/schema_registry.rs as

    python_schema_registry_protobuf.py BOOTSTRAP REGISTRY_URL

The message classes are built at run time from FileDescriptorProtos
written here (google.protobuf's descriptor pool and message factory), so
no protoc is needed. Registers (by serializing) two compatible versions
of a message (the second adds a field), produces 10 records with each,
consumes them back and deserializes them, checks the wire format's schema
ids, and sees an incompatible version (a field's type changed) refused
with 409.

Prints `ok: ...` lines, `refused STATUS CODE MESSAGE` for the 409 and
`ids V1 V2`; exits non-zero on a failed check."""

import struct
import sys
from functools import partial

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from schema_clients import check, consume_from_start

bootstrap, url = sys.argv[1], sys.argv[2]
TOPIC = "parcels"
SUBJECT = f"{TOPIC}-value"
F = descriptor_pb2.FieldDescriptorProto


def message_class(version, fields):
    """A `weir.test.Parcel` class from its fields (name, number, type), in
    a pool of its own (each version is another file of the same name)."""
    file = descriptor_pb2.FileDescriptorProto(
        name=f"parcel_v{version}.proto", package="weir.test", syntax="proto3")
    msg = file.message_type.add(name="Parcel")
    for name, number, kind in fields:
        msg.field.add(name=name, number=number, type=kind, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return GetMessageClass(pool.FindMessageTypeByName("weir.test.Parcel"))


V1 = message_class(1, [("id", 1, F.TYPE_STRING), ("grams", 2, F.TYPE_INT64)])
# Compatible: a new field.
V2 = message_class(2, [("id", 1, F.TYPE_STRING), ("grams", 2, F.TYPE_INT64),
                       ("carrier", 3, F.TYPE_STRING)])
# Breaking: field 2 changes from int64 to string.
V3 = message_class(3, [("id", 1, F.TYPE_STRING), ("grams", 2, F.TYPE_STRING)])


ctx = partial(SerializationContext, TOPIC, MessageField.VALUE)
consume_all = partial(consume_from_start, bootstrap, TOPIC)


sr = SchemaRegistryClient({"url": url})
p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
ser1 = ProtobufSerializer(V1, sr)
for i in range(10):
    p.produce(TOPIC, value=ser1(V1(id=f"p{i}", grams=i * 10), ctx()))
ser2 = ProtobufSerializer(V2, sr)
for i in range(10, 20):
    p.produce(TOPIC, value=ser2(V2(id=f"p{i}", grams=i * 10, carrier="rail"), ctx()))
check(p.flush(30) == 0, "every record delivered")
print("ok: produced 20 records with two Protobuf versions", flush=True)

check(sr.get_versions(SUBJECT) == [1, 2], f"versions {sr.get_versions(SUBJECT)}")
v1 = sr.get_version(SUBJECT, 1)
v2 = sr.get_latest_version(SUBJECT)
check(v1.schema.schema_type == "PROTOBUF", f"type {v1.schema.schema_type}")

values = consume_all(20)
# Magic byte, schema id, then the message indexes (0: the first message).
ids = [struct.unpack(">bI", v[:5]) for v in values]
check(all(magic == 0 for magic, _ in ids), "Confluent's magic byte")
check({i for _, i in ids[:10]} == {v1.schema_id}, f"old records carry V1's id: {ids[:10]}")
check({i for _, i in ids[10:]} == {v2.schema_id}, f"new records carry V2's id: {ids[10:]}")
check(all(v[5] == 0 for v in values), "the first message's index")
print(f"ids {v1.schema_id} {v2.schema_id}", flush=True)

de = ProtobufDeserializer(V2, {}, SchemaRegistryClient({"url": url}))
for i, v in enumerate(values):
    m = de(v, ctx())
    check(m.id == f"p{i}" and m.grams == i * 10, f"record {i} reads back: {m}")
    check(m.carrier == ("rail" if i >= 10 else ""), f"record {i} carrier: {m}")
print("ok: consumed and deserialized 20 records", flush=True)

try:
    ProtobufSerializer(V3, sr)(V3(id="x", grams="heavy"), ctx())
    check(False, "the incompatible schema is refused")
except SchemaRegistryError as e:
    print(f"refused {e.http_status_code} {e.error_code} {e.error_message}", flush=True)
    check(e.http_status_code == 409 and e.error_code == 409, "409 with code 409")
check(sr.get_versions(SUBJECT) == [1, 2], "nothing registered by the refusal")
print("ok: an incompatible schema was refused", flush=True)
