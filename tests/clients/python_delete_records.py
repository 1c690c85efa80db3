"""DeleteRecords through the Python admin clients: records of a partition
deleted up to an offset, and of another up to its high watermark (-1); an
offset above the high watermark and an unknown partition refused with
Kafka's codes; a lower offset changing nothing; then a consumer from the
earliest offset sees only the records from the new start.
Run by crates/weir-kafka/tests/delete_records.rs:
python_delete_records.py BOOTSTRAP CLIENT TOPIC (TOPIC has 2 empty partitions)."""

import sys

bootstrap, client, topic = sys.argv[1], sys.argv[2], sys.argv[3]
N = 10


def confluent():
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient
    p = Producer({"bootstrap.servers": bootstrap})
    for part in (0, 1):
        for i in range(N):
            p.produce(topic, value=b"v%d" % i, partition=part)
    assert p.flush(10) == 0

    a = AdminClient({"bootstrap.servers": bootstrap})

    def delete(part, offset):
        [(tp, fut)] = a.delete_records([TopicPartition(topic, part, offset)]).items()
        return fut.result(10).low_watermark

    def refused(part, offset):
        try:
            delete(part, offset)
        except KafkaException as e:
            return e.args[0].code()
        raise AssertionError(f"delete_records({part}, {offset}) was not refused")

    assert delete(0, 4) == 4
    assert delete(1, -1) == N
    assert refused(0, N + 1) == KafkaError.OFFSET_OUT_OF_RANGE
    # librdkafka looks the partition's leader up in the metadata first and
    # refuses an unknown partition itself (_NOENT) without asking the
    # broker; the broker's UNKNOWN_TOPIC_OR_PARTITION is checked through
    # kafka-python and on raw sockets.
    code = refused(5, 1)
    assert code in (KafkaError._NOENT, KafkaError.UNKNOWN_TOPIC_OR_PART), code
    assert delete(0, 2) == 4, "a lower offset changes nothing"

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dr-{client}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (4, N)
    assert c.get_watermark_offsets(TopicPartition(topic, 1), timeout=10) == (N, N)
    c.subscribe([topic])
    seen = []
    while len(seen) < N - 4:
        m = c.poll(10)
        assert m is not None, f"timed out with {seen}"
        assert m.error() is None, m.error()
        seen.append((m.partition(), m.offset(), m.value()))
    assert c.poll(1) is None
    c.close()
    assert seen == [(0, i, b"v%d" % i) for i in range(4, N)], seen


def kafka_python():
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.errors import OffsetOutOfRangeError, UnknownTopicOrPartitionError
    p = KafkaProducer(bootstrap_servers=bootstrap)
    for part in (0, 1):
        for i in range(N):
            p.send(topic, b"v%d" % i, partition=part)
    p.flush()
    p.close()

    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    out = a.delete_records({tp0: 4, tp1: -1})
    assert out[tp0]["low_watermark"] == 4 and out[tp0]["error_code"] == 0, out
    assert out[tp1]["low_watermark"] == N and out[tp1]["error_code"] == 0, out
    try:
        a.delete_records({tp0: N + 1})
        raise AssertionError("an offset above the high watermark was not refused")
    except OffsetOutOfRangeError:
        pass
    try:
        # Sent to the broker as it is, without a metadata lookup first.
        a.delete_records({TopicPartition(topic, 5): 1}, partition_leader_id=0)
        raise AssertionError("an unknown partition was not refused")
    except UnknownTopicOrPartitionError:
        pass
    assert a.delete_records({tp0: 2})[tp0]["low_watermark"] == 4, "a lower offset changes nothing"
    a.close()

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=3000)
    assert c.beginning_offsets([tp0, tp1]) == {tp0: 4, tp1: N}
    c.assign([tp0, tp1])
    c.seek_to_beginning()
    seen = [(m.partition, m.offset, m.value) for m in c]
    c.close()
    assert seen == [(0, i, b"v%d" % i) for i in range(4, N)], seen


{"confluent": confluent, "kafka-python": kafka_python}[client]()
print(f"{client}: delete records ok")
