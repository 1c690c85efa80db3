"""A static member that goes away without leaving expires on time.

Usage: python_static_expiry.py BOOTSTRAP CLIENT GROUP

CLIENT is confluent or kafka-python. A consumer with a group.instance.id,
a 6 s session and 500 ms heartbeats reads one record and closes; static
members do not send LeaveGroup, so the group stays non-empty until the
session ends. From the close, DeleteGroups is refused for the first 5 s
(the member's last heartbeat is at most 0.5 s before the close) and must
succeed within 6.4 s (the session, the broker's 100 ms timer and the
requests' time). Prints the time DeleteGroups first succeeded.
"""

import sys
import time

bootstrap, client, group = sys.argv[1], sys.argv[2], sys.argv[3]
SESSION_S = 6.0
topic = f"{group}-topic"


def make_admin():
    if client == "confluent":
        from confluent_kafka.admin import AdminClient
        return AdminClient({"bootstrap.servers": bootstrap})
    from kafka.admin import KafkaAdminClient
    return KafkaAdminClient(bootstrap_servers=bootstrap)


def delete_attempt(admin):
    """True once the group is deleted; False while it is not empty."""
    if client == "confluent":
        from confluent_kafka import KafkaError, KafkaException
        try:
            admin.delete_consumer_groups([group], request_timeout=10)[group].result(15)
            return True
        except KafkaException as e:
            assert e.args[0].code() == KafkaError.NON_EMPTY_GROUP, e
            return False
    outcome = admin.delete_groups([group])[group]
    assert outcome in ("OK", "NonEmptyGroupError"), outcome
    return outcome == "OK"


if client == "confluent":
    from confluent_kafka import Consumer, Producer
    p = Producer({"bootstrap.servers": bootstrap})
    p.produce(topic, b"x")
    p.flush(10)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.instance.id": "static-1",
                  "session.timeout.ms": int(SESSION_S * 1000), "heartbeat.interval.ms": 500,
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    while c.poll(0.5) is None:
        pass
    c.close()
else:
    from kafka import KafkaConsumer, KafkaProducer
    p = KafkaProducer(bootstrap_servers=bootstrap)
    p.send(topic, b"x").get(10)
    p.close()
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, group_instance_id="static-1",
                      session_timeout_ms=int(SESSION_S * 1000), heartbeat_interval_ms=500,
                      auto_offset_reset="earliest")
    while not c.poll(timeout_ms=500):
        pass
    c.close()
closed = time.monotonic()
admin = make_admin()

time.sleep(SESSION_S - 1.0 - (time.monotonic() - closed))
assert not delete_attempt(admin), f"{client}: the static member was gone 5 s after the close"
while not delete_attempt(admin):
    took = time.monotonic() - closed
    assert took < SESSION_S + 2, f"{client}: the static member never expired"
    time.sleep(0.02)
took = time.monotonic() - closed
print(f"{client}: deleted {took:.2f} s after the close")
assert took <= SESSION_S + 0.4, f"{client}: expired late, {took:.2f} s after the close"
