"""Topic administration through a Python client's admin API: create a topic
with 6 partitions, describe and alter its config, add partitions, see
refusals for bad requests, delete it. Run by crates/weir-kafka/tests/python.rs:
python_admin.py BOOTSTRAP CLIENT TOPIC."""

import sys
import time

bootstrap, client, topic = sys.argv[1], sys.argv[2], sys.argv[3]


def confluent():
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                       NewPartitions, NewTopic)
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1,
                              config={"retention.ms": "3600000"})])[topic].result(10)
    md = a.list_topics(timeout=10)
    assert len(md.topics[topic].partitions) == 6, md.topics[topic].partitions
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = a.describe_configs([res])[res].result(10)
    assert configs["retention.ms"].value == "3600000", configs["retention.ms"]
    assert configs["cleanup.policy"].value == "delete"
    change = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    a.incremental_alter_configs([change])[change].result(10)
    configs = a.describe_configs([res])[res].result(10)
    assert configs["retention.bytes"].value == "1048576"
    assert configs["retention.ms"].value == "604800000", "deleted key back to its default"
    bad = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)])
    try:
        a.incremental_alter_configs([bad])[bad].result(10)
        raise AssertionError("a bad value was accepted")
    except KafkaException as e:
        assert "INVALID_CONFIG" in str(e) or "retention.ms" in str(e), e
    a.create_partitions([NewPartitions(topic, 8)])[topic].result(10)
    assert len(a.list_topics(timeout=10).topics[topic].partitions) == 8
    try:
        a.create_partitions([NewPartitions(topic, 4)])[topic].result(10)
        raise AssertionError("shrinking was accepted")
    except KafkaException as e:
        assert "INVALID_PARTITIONS" in str(e) or "only grow" in str(e), e
    try:
        a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(10)
        raise AssertionError("a duplicate topic was accepted")
    except KafkaException as e:
        assert "TOPIC_ALREADY_EXISTS" in str(e) or "already exists" in str(e), e
    a.delete_topics([topic])[topic].result(10)
    assert topic not in a.list_topics(timeout=10).topics


def kafka_python():
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
    from kafka.errors import InvalidPartitionsError, TopicAlreadyExistsError
    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    created = a.create_topics([NewTopic(topic, 6, 1, topic_configs={"retention.ms": "3600000"})])
    assert topic in a.list_topics()
    # A topic created without error carries no error message (null, as
    # Kafka sends it; clients that check for a message read "" as one).
    result = created["topics"][0]
    assert (result["error_code"], result["error_message"]) == (0, None), result
    described = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    text = str(described)
    assert "3600000" in text, text
    a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.bytes": "1048576"})])
    text = str(a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)]))
    # kafka-python 3 sends IncrementalAlterConfigs when the broker has it.
    assert "1048576" in text and "3600000" in text, text
    a.create_partitions({topic: NewPartitions(8)})
    parts = a.describe_topics([topic])[0]["partitions"]
    assert len(parts) == 8, parts
    try:
        a.create_partitions({topic: NewPartitions(2)})
        raise AssertionError("shrinking was accepted")
    except InvalidPartitionsError:
        pass
    try:
        a.create_topics([NewTopic(topic, 1, 1)])
        raise AssertionError("a duplicate topic was accepted")
    except TopicAlreadyExistsError:
        pass
    a.delete_topics([topic])
    deadline = time.time() + 10
    while topic in a.list_topics() and time.time() < deadline:
        time.sleep(0.1)
    assert topic not in a.list_topics()
    a.close()


{"confluent": confluent, "kafka-python": kafka_python}[client]()
print(f"{client}: admin ok")
