"""The single-node admin APIs through Python clients' admin APIs: the
cluster (with authorized operations), topics described partition by
partition, leader elections, log directories, the metadata quorum,
idempotent producers' state, config resources and partition reassignments.
Run by crates/weir-kafka/tests/cluster_admin.rs:
python_cluster_admin.py BOOTSTRAP CLIENT TOPIC (TOPIC has 3 partitions)."""

import sys

bootstrap, client, topic = sys.argv[1], sys.argv[2], sys.argv[3]
port = int(bootstrap.rsplit(":", 1)[1])

CLUSTER_OPS = {"CREATE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS",
               "ALTER_CONFIGS", "IDEMPOTENT_WRITE"}
TOPIC_OPS = {"READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "DESCRIBE_CONFIGS",
             "ALTER_CONFIGS"}


def confluent():
    from confluent_kafka import (ElectionType, KafkaError, KafkaException, TopicCollection,
                                 TopicPartition)
    from confluent_kafka.admin import AdminClient
    a = AdminClient({"bootstrap.servers": bootstrap})
    c = a.describe_cluster(include_authorized_operations=True).result(10)
    assert c.cluster_id == "weir-cluster", c.cluster_id
    assert c.controller.id == 0, c.controller
    assert [(n.id, n.port) for n in c.nodes] == [(0, port)], c.nodes
    assert {op.name for op in c.authorized_operations} == CLUSTER_OPS, c.authorized_operations
    plain = a.describe_cluster().result(10)
    assert not plain.authorized_operations, plain.authorized_operations

    futures = a.describe_topics(TopicCollection([topic, "no-such-topic"]),
                                include_authorized_operations=True)
    d = futures[topic].result(10)
    assert d.name == topic and not d.is_internal, d
    assert [p.id for p in d.partitions] == [0, 1, 2], d.partitions
    for p in d.partitions:
        assert p.leader.id == 0 and [r.id for r in p.replicas] == [0] and [r.id for r in p.isr] == [0], p
    assert {op.name for op in d.authorized_operations} == TOPIC_OPS, d.authorized_operations
    try:
        futures["no-such-topic"].result(10)
        raise AssertionError("an unknown topic was described")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, e

    results = a.elect_leaders(ElectionType.PREFERRED,
                              [TopicPartition(topic, 0), TopicPartition(topic, 9)]).result(10)
    codes = {tp.partition: err.code() for tp, err in results.items()}
    assert codes == {0: KafkaError.ELECTION_NOT_NEEDED, 9: KafkaError.UNKNOWN_TOPIC_OR_PART}, results
    # Every partition: none needs an election, so none is listed.
    assert a.elect_leaders(ElectionType.UNCLEAN, None).result(10) == {}


def kafka_python():
    from kafka import KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.errors import (InvalidReplicationAssignmentError, NoReassignmentInProgressError,
                              UnknownTopicOrPartitionError)
    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    c = a.describe_cluster()
    assert c["cluster_id"] == "weir-cluster" and c["controller_id"] == 0, c
    assert [(b["broker_id"], b["port"]) for b in c["brokers"]] == [(0, port)], c

    # Partition 2 gets 7 records from one idempotent producer.
    p = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    for i in range(7):
        p.send(topic, b"record %d" % i, partition=2)
    p.flush()
    p.close()
    states = a.describe_producers([TopicPartition(topic, 1), TopicPartition(topic, 2)])
    assert states[TopicPartition(topic, 1)].active_producers == [], states
    [s] = states[TopicPartition(topic, 2)].active_producers
    assert s.producer_id >= 0 and s.producer_epoch == 0 and s.last_sequence == 6, s
    assert s.last_timestamp > 0 and s.coordinator_epoch == -1, s
    assert s.current_transaction_start_offset == -1, s

    [broker] = a.describe_log_dirs({topic: [1, 2]})
    [log_dir] = broker["log_dirs"]
    assert log_dir["error_code"] == 0 and log_dir["log_dir"].startswith("/"), log_dir
    assert 0 < log_dir["usable_bytes"] <= log_dir["total_bytes"], log_dir
    [t] = log_dir["topics"]
    sizes = {part["partition_index"]: part["partition_size"] for part in t["partitions"]}
    assert t["name"] == topic and sizes[1] == 0 and sizes[2] > 7 * len("record 0"), t

    q = a.describe_metadata_quorum()
    [qt] = q["topics"]
    [qp] = qt["partitions"]
    assert qt["topic_name"] == "__cluster_metadata" and qp["leader_id"] == 0, q
    assert [v["replica_id"] for v in qp["current_voters"]] == [0] and qp["observers"] == [], q
    assert [(l["host"], l["port"]) for n in q["nodes"] for l in n["listeners"]] == \
        [("127.0.0.1", port)], q

    # Two partitions a page: the first page ends inside TOPIC (which sorts
    # before the unknown topic), the second goes on from the cursor.
    page = a.describe_topic_partitions(["no-such-topic", topic], response_partition_limit=2)
    [t] = page["topics"]
    assert t["name"] == topic and t["topic_authorized_operations"] > 0, page
    assert [part["partition_index"] for part in t["partitions"]] == [0, 1], page
    assert page["next_cursor"] == {"topic_name": topic, "partition_index": 2}, page
    rest = a.describe_topic_partitions([topic, "no-such-topic"], cursor=page["next_cursor"])
    named = {t["name"]: t for t in rest["topics"]}
    assert [part["partition_index"] for part in named[topic]["partitions"]] == [2], rest
    assert named["no-such-topic"]["error_code"] == UnknownTopicOrPartitionError.errno, rest
    assert rest["next_cursor"] is None, rest

    resources = a.list_config_resources()
    assert resources["broker"] == ["0"] and topic in resources["topic"], resources
    assert a.list_config_resources(["TOPIC"]).keys() == {"topic"}

    assert a.list_partition_reassignments() == {}
    assert a.list_partition_reassignments({topic: [0], "no-such-topic": [1]}) == {}
    outcome = a.alter_partition_reassignments({
        TopicPartition(topic, 0): [0],
        TopicPartition(topic, 1): [0, 1],
        TopicPartition(topic, 2): None,
    })
    assert outcome == {
        TopicPartition(topic, 0): None,
        TopicPartition(topic, 1): InvalidReplicationAssignmentError,
        TopicPartition(topic, 2): NoReassignmentInProgressError,
    }, outcome


{"confluent": confluent, "kafka-python": kafka_python}[client]()
print(f"{client}: cluster admin ok")
