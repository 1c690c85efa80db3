"""ACLs through the Python clients, against a Weir server started with an
authorizer whose only ACLs let User:ANONYMOUS (what every client is here)
alter and describe the cluster, and whose super user is someone else.
Run by crates/weir-kafka/tests/acls.rs: python_acls.py BOOTSTRAP SCENARIO,
SCENARIO one of:

- admin: confluent-kafka's and kafka-python's admin clients create,
  describe and delete ACLs, and see a bad binding refused;
- denials: each resource type and operation family refused with Kafka's
  error as the client reports it, then allowed once an ACL grants it, on
  the same client without reconnecting; Metadata hides topics the caller
  may not describe. Ends by taking away the cluster's ALTER and seeing
  CreateAcls refused.
- restart-before, restart-after: run by crates/weir-cli/tests/acls.rs
  against `weir serve --authorizer --allow-everyone-if-no-acl-found`
  before and after a restart: a deny made before is still listed and
  still refuses after.

Prints one line per check passed; any failure raises."""

import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, ConfigResource, NewPartitions, NewTopic,
                                   ResourcePatternType, ResourceType)

bootstrap, scenario = sys.argv[1], sys.argv[2]
ME = "User:ANONYMOUS"
admin = AdminClient({"bootstrap.servers": bootstrap})


def acl(rtype, name, op, permission=AclPermissionType.ALLOW, pattern=ResourcePatternType.LITERAL,
        principal=ME):
    return AclBinding(rtype, name, pattern, principal, "*", op, permission)


def grant(*bindings):
    for f in admin.create_acls(list(bindings)).values():
        f.result(10)


def revoke(rtype, name, op):
    flt = AclBindingFilter(rtype, name, ResourcePatternType.LITERAL, ME, "*", op,
                           AclPermissionType.ANY)
    deleted = admin.delete_acls([flt])[flt].result(10)
    assert deleted, f"nothing matched {flt}"


def refused_with(code, f):
    """Runs f and expects a KafkaException carrying `code` (a KafkaError
    attribute name)."""
    try:
        f()
    except KafkaException as e:
        err = e.args[0]
        assert err.code() == getattr(KafkaError, code), f"{code} wanted, got {err}"
        return
    raise AssertionError(f"{code} wanted, the call succeeded")


def ok(text):
    print("ok:", text, flush=True)


def confluent_admin():
    topic_acl = acl(ResourceType.TOPIC, "orders", AclOperation.READ, principal="User:alice")
    prefixed = acl(ResourceType.GROUP, "app-", AclOperation.ALL, AclPermissionType.DENY,
                   ResourcePatternType.PREFIXED, principal="User:bob")
    grant(topic_acl, prefixed)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    listed = admin.describe_acls(everything).result(10)
    assert topic_acl in listed and prefixed in listed, listed
    ok("confluent-kafka creates and describes ACLs")
    # MATCH: the ACLs that apply to a group named app-payments.
    match = AclBindingFilter(ResourceType.GROUP, "app-payments", ResourcePatternType.MATCH, None,
                             None, AclOperation.ANY, AclPermissionType.ANY)
    assert admin.describe_acls(match).result(10) == [prefixed]
    ok("confluent-kafka describes by MATCH")
    alice = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None,
                             AclOperation.ANY, AclPermissionType.ANY)
    deleted = admin.delete_acls([alice])[alice].result(10)
    assert deleted == [topic_acl], deleted
    listed = admin.describe_acls(everything).result(10)
    assert topic_acl not in listed and prefixed in listed, listed
    ok("confluent-kafka deletes by principal")
    # A host that is no IP address: refused by the broker with its reason.
    bad = AclBinding(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:carol",
                     "example.com", AclOperation.READ, AclPermissionType.ALLOW)
    refused_with("INVALID_REQUEST", lambda: admin.create_acls([bad])[bad].result(10))
    ok("confluent-kafka sees a bad binding refused")


def kafka_python_admin():
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                             ACLResourcePatternType, KafkaAdminClient, ResourcePattern,
                             ResourcePatternFilter)
    from kafka.admin import ResourceType as RT
    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    mine = ACL("User:dave", "*", ACLOperation.WRITE, ACLPermissionType.ALLOW,
               ResourcePattern(RT.TRANSACTIONAL_ID, "tx-", ACLResourcePatternType.PREFIXED))
    created = a.create_acls([mine])
    assert created["succeeded"] == [mine] and not created["failed"], created
    flt = ACLFilter("User:dave", None, ACLOperation.ANY, ACLPermissionType.ANY,
                    ResourcePatternFilter(RT.ANY, None, ACLResourcePatternType.ANY))
    listed, _ = a.describe_acls(flt)
    assert listed == [mine], listed
    ok("kafka-python creates and describes ACLs")
    [(_, matched, error)] = a.delete_acls([flt])
    assert matched == [mine], matched
    listed, _ = a.describe_acls(flt)
    assert listed == [], listed
    ok("kafka-python deletes ACLs")
    bad = ACL("User:dave", "not-an-ip", ACLOperation.READ, ACLPermissionType.ALLOW,
              ResourcePattern(RT.TOPIC, "orders", ACLResourcePatternType.LITERAL))
    created = a.create_acls([bad])
    assert created["failed"] and created["failed"][0].__name__ == "InvalidRequestError", created
    ok("kafka-python sees a bad binding refused")
    a.close()


def delivery_error(producer, topic):
    """Produces one record and returns its delivery error (None if none)."""
    got = []
    deadline = time.time() + 20
    while True:
        try:
            producer.produce(topic, b"v", callback=lambda err, msg: got.append(err))
            break
        except KafkaException as e:
            # librdkafka refuses locally while it holds the topic as
            # refused, until its next metadata refresh.
            if time.time() > deadline:
                raise
            assert e.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, e
            producer.poll(0.2)
    deadline = time.time() + 20
    while not got and time.time() < deadline:
        producer.poll(0.1)
    assert got, "no delivery report"
    return got[0]


def next_event(consumer, timeout=20):
    """The next record or error the consumer gives."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        return msg.error() or msg
    raise AssertionError("neither a record nor an error")


def next_record(consumer, timeout=30):
    """The next record, past errors still queued from before a grant."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = next_event(consumer, deadline - time.time())
        if not isinstance(got, KafkaError):
            return got
    raise AssertionError("no record")


def is_error(got, code):
    return isinstance(got, KafkaError) and got.code() == getattr(KafkaError, code)


def denials():
    t = "t-" + uuid.uuid4().hex[:6]
    # The cluster: an idempotent producer needs IDEMPOTENT_WRITE on the
    # cluster (or WRITE on some topic; none yet).
    # librdkafka raises the refusal from poll(), as a fatal error.
    idem = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})

    def poll_a_while():
        deadline = time.time() + 20
        while time.time() < deadline:
            idem.poll(0.1)
    refused_with("CLUSTER_AUTHORIZATION_FAILED", poll_a_while)
    ok("cluster idempotent write: CLUSTER_AUTHORIZATION_FAILED")

    # Topic create: neither CREATE on the cluster nor on the topic.
    refused_with("TOPIC_AUTHORIZATION_FAILED",
                 lambda: admin.create_topics([NewTopic(t, 2, 1)])[t].result(10))
    grant(acl(ResourceType.TOPIC, t, AclOperation.CREATE))
    admin.create_topics([NewTopic(t, 2, 1)])[t].result(10)
    ok("topic create: TOPIC_AUTHORIZATION_FAILED, then created once granted")

    # Topic describe: Metadata hides it when listing, refuses it by name.
    assert t not in admin.list_topics(timeout=10).topics
    named = admin.list_topics(topic=t, timeout=10).topics[t]
    assert named.error is not None, named
    assert named.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, named.error
    res = ConfigResource(ConfigResource.Type.TOPIC, t)
    refused_with("TOPIC_AUTHORIZATION_FAILED", lambda: admin.describe_configs([res])[res].result(10))
    grant(acl(ResourceType.TOPIC, t, AclOperation.DESCRIBE))
    assert t in admin.list_topics(timeout=10).topics
    ok("topic describe: hidden from the listing and refused by name, shown once granted")

    # Topic write, on one producer: refused, then accepted.
    producer = Producer({"bootstrap.servers": bootstrap, "topic.metadata.refresh.interval.ms": 500})
    err = delivery_error(producer, t)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    grant(acl(ResourceType.TOPIC, t, AclOperation.WRITE))
    assert delivery_error(producer, t) is None
    producer.flush(10)
    ok("topic write: TOPIC_AUTHORIZATION_FAILED, then written by the same producer")

    # Topic read, on one consumer (assigned: it only finds its group's
    # coordinator, which DESCRIBE on the group allows).
    grant(acl(ResourceType.GROUP, "readers", AclOperation.DESCRIBE))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "readers",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(t, p, 0) for p in range(2)])
    got = next_event(consumer)
    assert is_error(got, "TOPIC_AUTHORIZATION_FAILED"), got
    grant(acl(ResourceType.TOPIC, t, AclOperation.READ))
    assert next_record(consumer).value() == b"v"
    ok("topic read: TOPIC_AUTHORIZATION_FAILED, then read by the same consumer")

    # Group read: committing for a group the caller may describe, not read.
    refused_with("GROUP_AUTHORIZATION_FAILED",
                 lambda: consumer.commit(offsets=[TopicPartition(t, 0, 1)], asynchronous=False))
    ok("group read (commit): GROUP_AUTHORIZATION_FAILED")
    consumer.close()

    # Group read: subscribing joins the group; refused, then joined.
    group = "g-" + t
    sub = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                    "auto.offset.reset": "earliest", "enable.auto.commit": False})
    sub.subscribe([t])
    got = next_event(sub)
    assert is_error(got, "GROUP_AUTHORIZATION_FAILED"), got
    grant(acl(ResourceType.GROUP, group, AclOperation.READ))
    assert next_record(sub).value() == b"v"
    sub.commit(asynchronous=False)
    sub.close()
    ok("group read (subscribe): GROUP_AUTHORIZATION_FAILED, then joined by the same consumer")

    # Group describe and delete.
    refused_with("GROUP_AUTHORIZATION_FAILED",
                 lambda: admin.describe_consumer_groups(["other"])["other"].result(10))
    refused_with("GROUP_AUTHORIZATION_FAILED",
                 lambda: admin.delete_consumer_groups([group])[group].result(10))
    ids = [g.group_id for g in admin.list_consumer_groups().result(10).valid]
    assert ids == [group], ids
    ok("group describe and delete: GROUP_AUTHORIZATION_FAILED")

    # Topic alter, alter configs and delete.
    refused_with("TOPIC_AUTHORIZATION_FAILED",
                 lambda: admin.create_partitions([NewPartitions(t, 3)])[t].result(10))
    change = ConfigResource(ConfigResource.Type.TOPIC, t, set_config={"retention.ms": "1000"})
    refused_with("TOPIC_AUTHORIZATION_FAILED", lambda: admin.alter_configs([change])[change].result(10))
    refused_with("TOPIC_AUTHORIZATION_FAILED", lambda: admin.delete_topics([t])[t].result(10))
    grant(acl(ResourceType.TOPIC, t, AclOperation.DELETE))
    admin.delete_topics([t])[t].result(10)
    ok("topic alter, alter configs and delete: TOPIC_AUTHORIZATION_FAILED, deleted once granted")

    # Cluster configs.
    broker = ConfigResource(ConfigResource.Type.BROKER, "0")
    refused_with("CLUSTER_AUTHORIZATION_FAILED",
                 lambda: admin.describe_configs([broker])[broker].result(10))
    ok("cluster describe configs: CLUSTER_AUTHORIZATION_FAILED")

    # A transactional producer may neither find its coordinator (DESCRIBE)
    # nor write (WRITE) its transactional id.
    txn = Producer({"bootstrap.servers": bootstrap, "transactional.id": "tx-" + t})
    refused_with("TRANSACTIONAL_ID_AUTHORIZATION_FAILED", lambda: txn.init_transactions(10))
    ok("transactional id: TRANSACTIONAL_ID_AUTHORIZATION_FAILED")

    # The cluster's ALTER taken away (the caller may still do that): no
    # more ACL changes.
    revoke(ResourceType.BROKER, "kafka-cluster", AclOperation.ALTER)
    refused_with("CLUSTER_AUTHORIZATION_FAILED",
                 lambda: grant(acl(ResourceType.TOPIC, t, AclOperation.READ)))
    ok("cluster alter: CLUSTER_AUTHORIZATION_FAILED once revoked")


def restart(before):
    deny = acl(ResourceType.TOPIC, "locked", AclOperation.ALL, AclPermissionType.DENY)
    if before:
        grant(deny)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    assert admin.describe_acls(everything).result(10) == [deny]
    ok("the deny is listed")
    producer = Producer({"bootstrap.servers": bootstrap})
    err = delivery_error(producer, "locked")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    ok("the denied topic is refused")
    # No ACL names this topic: allowed (allow.everyone.if.no.acl.found).
    assert delivery_error(producer, "open") is None
    producer.flush(10)
    ok("a topic no ACL names is written")


if scenario == "admin":
    confluent_admin()
    kafka_python_admin()
elif scenario == "denials":
    denials()
elif scenario in ("restart-before", "restart-after"):
    restart(scenario == "restart-before")
else:
    raise SystemExit(f"unknown scenario {scenario}")
