"""Manual replica assignments through both Python admin clients.

Usage: python_replica_assignment.py BOOTSTRAP PREFIX

An assignment that names only this broker (node 0) creates the topic or its
new partitions; one that names another broker is refused with
INVALID_REPLICA_ASSIGNMENT and changes nothing. Prints one OK line per
client.
"""

import sys

bootstrap, prefix = sys.argv[1], sys.argv[2]


def confluent():
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

    a = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"{prefix}-confluent"
    a.create_topics([NewTopic(topic, num_partitions=3, replication_factor=-1, replica_assignment=[[0], [0], [0]])])[topic].result(10)
    assert len(a.list_topics(topic, timeout=10).topics[topic].partitions) == 3
    bad = f"{prefix}-confluent-bad"
    try:
        a.create_topics([NewTopic(bad, num_partitions=2, replication_factor=-1, replica_assignment=[[0], [1]])])[bad].result(10)
        raise SystemExit("confluent: an assignment to broker 1 was accepted")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, e
    assert bad not in a.list_topics(timeout=10).topics
    a.create_partitions([NewPartitions(topic, 5, replica_assignment=[[0], [0]])])[topic].result(10)
    assert len(a.list_topics(topic, timeout=10).topics[topic].partitions) == 5
    for assignment in ([[0], [2]], [[0]], [[0, 0], [0]]):
        try:
            a.create_partitions([NewPartitions(topic, 7, replica_assignment=assignment)])[topic].result(10)
            raise SystemExit(f"confluent: partitions with {assignment} were added")
        except KafkaException as e:
            assert e.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, (assignment, e)
    assert len(a.list_topics(topic, timeout=10).topics[topic].partitions) == 5
    print("OK confluent replica assignments")


def kafka_python():
    from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic
    from kafka.errors import InvalidReplicationAssignmentError

    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    topic = f"{prefix}-kafka-python"
    result = a.create_topics([NewTopic(topic, num_partitions=-1, replication_factor=-1,
                                       replica_assignments={0: [0], 1: [0]})])
    errors = [t for t in result.topic_errors if t[1] != 0] if hasattr(result, "topic_errors") else []
    assert not errors, errors
    bad = f"{prefix}-kafka-python-bad"
    try:
        result = a.create_topics([NewTopic(bad, num_partitions=-1, replication_factor=-1,
                                           replica_assignments={0: [7]})])
        raise SystemExit(f"kafka-python: an assignment to broker 7 was accepted: {result}")
    except InvalidReplicationAssignmentError:
        pass
    a.create_partitions({topic: NewPartitions(3, [[0]])})
    try:
        a.create_partitions({topic: NewPartitions(4, [[5]])})
        raise SystemExit("kafka-python: a partition on broker 5 was added")
    except InvalidReplicationAssignmentError:
        pass
    described = a.describe_topics([topic])
    assert len(described[0]["partitions"]) == 3, described
    a.close()
    print("OK kafka-python replica assignments")


confluent()
kafka_python()
