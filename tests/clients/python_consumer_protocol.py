"""KIP-848's consumer rebalance protocol (group.protocol=consumer) through
confluent-kafka (librdkafka), to show Weir's server-side assignment and
incremental reconciliation serve an unmodified client: three consumers share
a 6-partition topic, commit what they process and see every record exactly
once; one leaves and the other two take its partitions over; after all
leave, a restarted consumer resumes from the committed offsets and shares
again with a second one. A consumer of another group subscribes by
pattern with the range assignor and reads everything once. The admin client then describes and
lists the group as a consumer-protocol group. Run by
crates/weir-kafka/tests/consumer_protocol.rs as
`python_consumer_protocol.py BOOTSTRAP`; prints `OK consumer protocol` at
the end, or fails with what went wrong.

Consumers run in threads of this process (librdkafka does the work on its
own threads). Each consumes in batches and commits a batch synchronously
before it polls again, so a partition is never revoked with processed but
uncommitted records: a duplicate or a gap is Weir's fault."""

import sys
import threading
import time
from collections import Counter

from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupType, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "kip848-orders"
GROUP = "kip848-group"
PARTITIONS = 6
# Each phase's wait, at most (the server's heartbeat interval is short).
PHASE_TIMEOUT_S = 20


def log(*args):
    print(f"{time.monotonic():9.3f}", *args, flush=True)


class Member(threading.Thread):
    """One consumer of the group, until stopped; records what it processed
    and its assignment as the rebalance callbacks report it."""

    def __init__(self, bootstrap, name, seen, lock, group=GROUP, subscription=(TOPIC,), extra=None):
        super().__init__(name=name, daemon=True)
        self.member = name
        self.seen, self.lock = seen, lock
        self.subscription = list(subscription)
        self.owned = set()
        self.errors = []
        self.stop = threading.Event()
        self.closed = threading.Event()
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "group.protocol": "consumer",
                "client.id": name,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "reconnect.backoff.ms": 20,
                "reconnect.backoff.max.ms": 200,
                **(extra or {}),
            }
        )

    def run(self):
        c = self.consumer

        def assigned(_c, partitions):
            self.owned.update(tp.partition for tp in partitions)
            log(self.member, "assigned", sorted(tp.partition for tp in partitions))

        def revoked(_c, partitions):
            self.owned.difference_update(tp.partition for tp in partitions)
            log(self.member, "revoked", sorted(tp.partition for tp in partitions))

        c.subscribe(self.subscription, on_assign=assigned, on_revoke=revoked)
        try:
            while not self.stop.is_set():
                batch = c.consume(num_messages=50, timeout=0.1)
                ends = {}
                for m in batch:
                    if m.error():
                        self.errors.append(str(m.error()))
                        continue
                    with self.lock:
                        self.seen.append((m.partition(), m.offset(), self.member))
                    ends[(m.topic(), m.partition())] = m.offset() + 1
                if ends:
                    offsets = [TopicPartition(t, p, o) for (t, p), o in ends.items()]
                    for tp in c.commit(offsets=offsets, asynchronous=False):
                        if tp.error:
                            self.errors.append(f"commit {tp.partition}: {tp.error}")
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.errors.append(repr(e))
        finally:
            c.close()
            self.closed.set()
            log(self.member, "closed")

    def leave(self):
        self.stop.set()
        if not self.closed.wait(PHASE_TIMEOUT_S):
            raise SystemExit(f"{self.member} did not close")


def until(what, condition, timeout_s=PHASE_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)
    log("reached:", what)


def produce(bootstrap, start, n):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(start, start + n):
        p.produce(TOPIC, value=str(i).encode(), partition=i % PARTITIONS)
    if p.flush(30) != 0:
        raise SystemExit("produce did not finish")


def check_exactly_once(seen, lock, produced):
    """Every produced record processed once: offsets 0..k-1 of each
    partition, no duplicate."""
    with lock:
        got = [(p, o) for p, o, _ in seen]
    dupes = [k for k, n in Counter(got).items() if n > 1]
    if dupes:
        raise SystemExit(f"records processed twice: {sorted(dupes)[:10]}")
    per_partition = Counter(p for p, _ in got)
    want = {p: len(range(p, produced, PARTITIONS)) for p in range(PARTITIONS)}
    if dict(per_partition) != want:
        raise SystemExit(f"records per partition {dict(per_partition)}, want {want}")


def main():
    bootstrap = sys.argv[1]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result()
    seen, lock = [], threading.Lock()
    members = {}

    def start(name):
        members[name] = Member(bootstrap, name, seen, lock)
        members[name].start()

    def active():
        return [m for m in members.values() if not m.stop.is_set()]

    def settled(sizes):
        owned = [m.owned for m in active()]
        everything = set().union(*owned)
        return sorted(len(o) for o in owned) == sizes and len(everything) == PARTITIONS

    def processed():
        with lock:
            return len(seen)

    # Three members share six partitions; each record once.
    # (Half the records wait for the group, half come once it settled.)
    produced = 600
    produce(bootstrap, 0, 300)
    for name in ("c1", "c2", "c3"):
        start(name)
    until("three members with two partitions each", lambda: settled([2, 2, 2]))
    produce(bootstrap, 300, 300)
    until(f"{produced} records processed", lambda: processed() >= produced)
    check_exactly_once(seen, lock, produced)
    by_member = Counter(m for _, _, m in seen)
    log("records per member", dict(by_member))
    if sorted(by_member) != ["c1", "c2", "c3"]:
        raise SystemExit(f"not every member read records: {dict(by_member)}")

    # The group as the admin client sees it: a consumer-protocol group.
    described = admin.describe_consumer_groups([GROUP])[GROUP].result()
    if described.type != ConsumerGroupType.CONSUMER or described.state != ConsumerGroupState.STABLE:
        raise SystemExit(f"described as {described.type} {described.state}")
    if len(described.members) != 3:
        raise SystemExit(f"described {len(described.members)} members")
    listed = admin.list_consumer_groups(types={ConsumerGroupType.CONSUMER}).result()
    if GROUP not in [g.group_id for g in listed.valid]:
        raise SystemExit(f"{GROUP} not listed as a consumer group: {listed.valid}")
    log("described and listed as a consumer group")

    # c3 leaves: c1 and c2 take its partitions over, new records once.
    members["c3"].leave()
    until("two members with three partitions each", lambda: settled([3, 3]))
    produce(bootstrap, produced, 600)
    produced += 600
    until(f"{produced} records processed", lambda: processed() >= produced)
    check_exactly_once(seen, lock, produced)

    # Both go, records arrive for nobody, and a restarted member alone
    # resumes from what was committed: it reads only the new records.
    members["c1"].leave()
    members["c2"].leave()
    produce(bootstrap, produced, 300)
    produced += 300
    start("c2-restarted")
    until("the restarted member alone", lambda: settled([6]))
    until(f"{produced} records processed", lambda: processed() >= produced)
    check_exactly_once(seen, lock, produced)
    restarted = sum(1 for _, _, m in seen if m == "c2-restarted")
    if restarted != 300:
        raise SystemExit(f"the restarted member processed {restarted} records, want 300")
    # Another joins it; partitions move through revocation, records once.
    start("c1-restarted")
    until("two members again", lambda: settled([3, 3]))
    produce(bootstrap, produced, 300)
    produced += 300
    until(f"{produced} records processed", lambda: processed() >= produced)
    time.sleep(0.5)  # a duplicate would show up now
    check_exactly_once(seen, lock, produced)

    # Another group subscribes by pattern (the server resolves it) and
    # asks for the range assignor: it reads everything, once.
    others, other_lock = [], threading.Lock()
    pattern = Member(
        bootstrap,
        "p1",
        others,
        other_lock,
        group=GROUP + "-pattern",
        subscription=["^kip848-.*"],
        extra={"group.remote.assignor": "range"},
    )
    members["p1"] = pattern
    pattern.start()
    until("the pattern member with every partition", lambda: len(pattern.owned) == PARTITIONS)
    until(f"{produced} records read by pattern", lambda: len(others) >= produced)
    check_exactly_once(others, other_lock, produced)
    described = admin.describe_consumer_groups([GROUP + "-pattern"])[GROUP + "-pattern"].result()
    if described.partition_assignor != "range":
        raise SystemExit(f"pattern group assigned by {described.partition_assignor!r}")

    for m in active():
        m.leave()
    errors = [f"{m.member}: {e}" for m in members.values() for e in m.errors]
    if errors:
        raise SystemExit(f"client errors: {errors}")
    # Everything processed was committed.
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP})
    committed = probe.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=10)
    probe.close()
    total = sum(tp.offset for tp in committed)
    if total != produced:
        raise SystemExit(f"committed offsets add up to {total}, want {produced}")
    log(f"OK consumer protocol: {produced} records once, {dict(Counter(m for _, _, m in seen))}")


if __name__ == "__main__":
    main()
