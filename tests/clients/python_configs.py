"""Topic and broker configs through a Python client's admin API: create
topics with compression.type and message.timestamp.type, describe with
synonyms, APPEND/SUBTRACT on list configs, a broker default changed live,
static broker configs refused, and a produce to a LogAppendTime topic read
back with the broker's timestamps. Run by crates/weir-kafka/tests/configs.rs:
python_configs.py BOOTSTRAP CLIENT PREFIX (topics PREFIX-lat, PREFIX-zstd,
PREFIX-plain are left for the test to inspect). cleanup.policy=compact is
accepted (APPEND/SUBTRACT, CreateTopics), and a compacted topic refuses a
record without a key."""

import sys
import time

bootstrap, client, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
lat, zstd, plain = f"{prefix}-lat", f"{prefix}-zstd", f"{prefix}-plain"


def confluent():
    from confluent_kafka import Consumer, KafkaException, Producer, TIMESTAMP_LOG_APPEND_TIME
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                       ConfigSource, NewTopic)
    a = AdminClient({"bootstrap.servers": bootstrap})
    futures = a.create_topics([
        NewTopic(lat, 1, 1, config={"message.timestamp.type": "LogAppendTime"}),
        NewTopic(zstd, 1, 1, config={"compression.type": "zstd", "compression.zstd.level": "5"}),
        NewTopic(plain, 1, 1, config={"retention.ms": "3600000", "message.format.version": "3.0-IV1",
                                      "min.insync.replicas": "1",
                                      "message.timestamp.before.max.ms": "60000"}),
    ])
    for f in futures.values():
        f.result(10)

    res = ConfigResource(ConfigResource.Type.TOPIC, plain)
    configs = a.describe_configs([res])[res].result(10)
    retention = configs["retention.ms"]
    assert retention.value == "3600000" and retention.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, retention
    syn = [(s.name, s.value, s.source) for s in retention.synonyms.values()]
    assert ("retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value) in syn, syn
    assert ("log.retention.ms", "604800000", ConfigSource.DEFAULT_CONFIG.value) in syn, syn
    for name in ["compression.type", "message.timestamp.type", "min.cleanable.dirty.ratio",
                 "unclean.leader.election.enable", "remote.storage.enable", "segment.jitter.ms"]:
        assert name in configs, name
        assert configs[name].source == ConfigSource.DEFAULT_CONFIG.value, configs[name]
        assert not configs[name].is_read_only and not configs[name].is_sensitive
    assert "message.format.version" not in configs
    assert configs["min.insync.replicas"].value == "1"

    # cleanup.policy is a list: APPEND and SUBTRACT, compact included.
    def incremental(*entries):
        r = ConfigResource(ConfigResource.Type.TOPIC, plain, incremental_configs=list(entries))
        return a.incremental_alter_configs([r])[r].result(10)
    incremental(ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND))
    policy = a.describe_configs([res])[res].result(10)["cleanup.policy"].value
    assert policy == "delete,compact", policy
    incremental(ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SUBTRACT))
    incremental(ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.APPEND))
    incremental(ConfigEntry("leader.replication.throttled.replicas", "0:0,1:0",
                            incremental_operation=AlterConfigOpType.APPEND))
    incremental(ConfigEntry("leader.replication.throttled.replicas", "0:0",
                            incremental_operation=AlterConfigOpType.SUBTRACT))
    try:
        incremental(ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.APPEND))
        raise AssertionError("APPEND on a long was accepted")
    except KafkaException as e:
        assert "INVALID_CONFIG" in str(e) or "list" in str(e), e
    configs = a.describe_configs([res])[res].result(10)
    assert configs["cleanup.policy"].value == "delete", configs["cleanup.policy"]
    assert configs["leader.replication.throttled.replicas"].value == "1:0"

    # The broker: its settings with sources; log.* defaults change live.
    broker = ConfigResource(ConfigResource.Type.BROKER, "0")
    bconf = a.describe_configs([broker])[broker].result(10)
    for name in ["advertised.listeners", "listeners", "log.dirs", "node.id", "num.partitions",
                 "auto.create.topics.enable", "group.initial.rebalance.delay.ms",
                 "group.min.session.timeout.ms", "group.max.session.timeout.ms", "log.retention.ms",
                 "message.max.bytes", "log.cleanup.policy"]:
        assert name in bconf, name
    assert bconf["log.dirs"].source == ConfigSource.STATIC_BROKER_CONFIG.value and bconf["log.dirs"].is_read_only
    assert bconf["num.partitions"].source == ConfigSource.DEFAULT_CONFIG.value and bconf["num.partitions"].value == "1"
    assert not bconf["log.retention.ms"].is_read_only
    change = ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=[
        ConfigEntry("log.retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([change])[change].result(10)
    bconf = a.describe_configs([broker])[broker].result(10)
    assert bconf["log.retention.ms"].value == "7200000"
    assert bconf["log.retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    lat_res = ConfigResource(ConfigResource.Type.TOPIC, lat)
    lat_conf = a.describe_configs([lat_res])[lat_res].result(10)
    assert lat_conf["retention.ms"].value == "7200000", lat_conf["retention.ms"]
    assert lat_conf["retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    static = ConfigResource(ConfigResource.Type.BROKER, "0", incremental_configs=[
        ConfigEntry("num.partitions", "3", incremental_operation=AlterConfigOpType.SET)])
    try:
        a.incremental_alter_configs([static])[static].result(10)
        raise AssertionError("a static broker config was changed")
    except KafkaException as e:
        assert "INVALID_REQUEST" in str(e) or "dynamically" in str(e), e

    # Produce: old CreateTime timestamps come back replaced by the
    # broker's on the LogAppendTime topic, are refused on the bounded one.
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    errors = []
    for i in range(10):
        p.produce(lat, key=b"k", value=f"v{i}".encode(), timestamp=1000 + i)
        p.produce(zstd, key=b"k", value=(f"zstd value {i} " * 20).encode())
    p.produce(plain, value=b"too old", timestamp=1000,
              on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(10) == 0
    assert len(errors) == 1 and errors[0] is not None and "INVALID_TIMESTAMP" in errors[0].name(), errors
    before = int(time.time() * 1000) - 60_000
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{prefix}-g",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([lat, zstd])
    got = {lat: [], zstd: []}
    deadline = time.time() + 20
    while (len(got[lat]) < 10 or len(got[zstd]) < 10) and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got[m.topic()].append((m.timestamp(), m.value()))
    c.close()
    assert len(got[lat]) == 10 and len(got[zstd]) == 10, {k: len(v) for k, v in got.items()}
    for (kind, ts), _ in got[lat]:
        assert kind == TIMESTAMP_LOG_APPEND_TIME and ts >= before, (kind, ts)
    assert sorted(v for _, v in got[zstd]) == sorted((f"zstd value {i} " * 20).encode() for i in range(10))


def kafka_python():
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
    from kafka.errors import InvalidConfigurationError
    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    a.create_topics([
        NewTopic(lat, 1, 1, topic_configs={"message.timestamp.type": "LogAppendTime"}),
        NewTopic(zstd, 1, 1, topic_configs={"compression.type": "zstd"}),
        NewTopic(plain, 1, 1, topic_configs={"retention.ms": "3600000", "preallocate": "true"}),
    ])
    text = str(a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, plain)], include_synonyms=True))
    assert "3600000" in text and "log.retention.ms" in text and "BOOLEAN" in text, text
    # A compacted topic is created; a record without a key is refused.
    a.create_topics([NewTopic(f"{prefix}-compact", 1, 1, topic_configs={"cleanup.policy": "compact"})])
    p = KafkaProducer(bootstrap_servers=bootstrap, retries=0)
    try:
        p.send(f"{prefix}-compact", value=b"no key").get(10)
        raise AssertionError("a keyless record was accepted by a compacted topic")
    except Exception as e:  # kafka-python's InvalidRecordError (87) or CorruptRecordError
        assert "87" in str(e) or "Invalid" in str(e) or "Corrupt" in str(e), repr(e)
    p.send(f"{prefix}-compact", key=b"k", value=b"keyed").get(10)
    p.close()
    try:
        a.create_topics([NewTopic(f"{prefix}-bad", 1, 1, topic_configs={"no.such.config": "1"})])
        raise AssertionError("an unknown config was accepted")
    except InvalidConfigurationError:
        pass
    text = str(a.describe_configs([ConfigResource(ConfigResourceType.BROKER, "0")], config_filter="all"))
    assert "log.dirs" in text and "num.partitions" in text and "STATIC_BROKER_CONFIG" in text, text
    a.alter_configs([ConfigResource(ConfigResourceType.BROKER, "0", configs={"log.segment.bytes": "104857600"})])
    text = str(a.describe_configs([ConfigResource(ConfigResourceType.BROKER, "0")]))
    assert "104857600" in text, text
    a.close()

    p = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(10):
        p.send(lat, value=f"v{i}".encode(), timestamp_ms=1000 + i)
        p.send(zstd, value=(f"zstd value {i} " * 20).encode())
    p.flush(10)
    p.close()
    before = int(time.time() * 1000) - 60_000
    c = KafkaConsumer(lat, zstd, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=10_000)
    got = {lat: [], zstd: []}
    for m in c:
        got[m.topic].append(m)
        if len(got[lat]) == 10 and len(got[zstd]) == 10:
            break
    c.close()
    assert len(got[lat]) == 10 and len(got[zstd]) == 10, {k: len(v) for k, v in got.items()}
    for m in got[lat]:
        assert m.timestamp_type == 1 and m.timestamp >= before, (m.timestamp_type, m.timestamp)


{"confluent": confluent, "kafka-python": kafka_python}[client]()
print(f"{client}: configs ok")
