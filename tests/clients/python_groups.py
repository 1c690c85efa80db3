"""Consumer groups through real clients, to show Weir's group coordinator and
committed offsets behave as Kafka's do: fan-out to several groups, work
sharing under each assignor, rebalances when a member leaves or is killed,
commit strategies under kill -9, the admin APIs, and a run across server
restarts. Run by crates/weir-kafka/tests/groups_*.rs and
crates/weir-cli/tests/kill9_groups.rs as `python_groups.py SCENARIO
BOOTSTRAP ARGS...` (see SCENARIOS at the end).

The scenarios start group members as processes (`python_groups.py member
...` for confluent-kafka and kafka-python, `kafkajs_groups.js member ...`
for kafkajs), so one can be killed with SIGKILL. A member prints one line
per event, each with its wall-clock time, so every member's lines merge
into one timeline that check_timeline judges:

    A t P,P,...|-   the member's partitions after an assignment change
    R t P O VALUE   it processed the record at partition P, offset O
    C t P O         a commit of offset O (the next to read) was acknowledged
    F t REASON      a commit was refused (nothing was committed)
    W t REASON      a client error it goes on from
    E t REASON      a fatal error; it exits non-zero
    X t             it closed its consumer (left the group) and exits

A member leaves when its stdin closes (so members of a killed scenario
follow it out) and gives up after MEMBER_LIFETIME_S in any case."""

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from typing import NamedTuple

# Short group timings so the suite stays fast (Kafka's defaults are 45 s,
# 3 s and 300 s).
SESSION_MS = 6000
HEARTBEAT_MS = 500
MAX_POLL_MS = 10000
# How soon a dead or departed member's partitions must be someone else's.
MOVE_BOUND_S = (SESSION_MS + HEARTBEAT_MS) / 1000 + 1
MEMBER_LIFETIME_S = 100
SCENARIO_LIFETIME_S = 150
# Records a member takes per poll, so a crash lands between batches often.
BATCH_RECORDS_MAX = 20
HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------- members

_out = threading.Lock()


def emit(kind, *fields):
    line = " ".join([kind, f"{time.time():.6f}", *map(str, fields)]) + "\n"
    # Callbacks of kafka-python run on its IO thread: one write per line.
    with _out:
        sys.stdout.write(line)
        sys.stdout.flush()


def partitions_field(partitions):
    return ",".join(map(str, sorted(partitions))) or "-"


def run_member(client, bootstrap, group, topic, assignor, commit, delay_ms):
    """One group member: consumes `topic` in `group`, printing what it does.
    `commit` is after (commit each batch after processing it), before
    (commit it before processing), auto (the client's auto-commit of
    processed records) or none."""
    stop = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        stop.set()

    def watchdog():
        time.sleep(MEMBER_LIFETIME_S)
        emit("E", "member-lifetime-exceeded")
        os._exit(3)

    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Thread(target=watchdog, daemon=True).start()
    member = {"confluent": member_confluent, "kafka-python": member_kafka_python}[client]
    member(bootstrap, group, topic, assignor, commit, delay_ms / 1000, stop)
    emit("X")


def batch_ends(batch):
    """The offset to commit for each partition of a batch: one past its last."""
    ends = {}
    for partition, offset, _ in batch:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    return ends


def process(batch, delay_s, after_each=lambda i: None):
    for i, (partition, offset, value) in enumerate(batch):
        emit("R", partition, offset, value)
        if delay_s:
            time.sleep(delay_s)
        after_each(i)


def member_confluent(bootstrap, group, topic, assignor, commit, delay_s, stop):
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    owned = set()

    def assigned(_consumer, partitions):
        owned.update(tp.partition for tp in partitions)
        emit("A", partitions_field(owned))

    def revoked(_consumer, partitions):
        owned.difference_update(tp.partition for tp in partitions)
        emit("A", partitions_field(owned))

    def committed(err, partitions):
        if err:
            emit("F", err.name())
            return
        for tp in partitions:
            if tp.error:
                emit("F", tp.error.name())
            elif tp.offset >= 0:
                emit("C", tp.partition, tp.offset)

    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": HEARTBEAT_MS,
        "max.poll.interval.ms": MAX_POLL_MS,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": commit == "auto",
        "auto.commit.interval.ms": 200,
        # Auto-commit then commits what the member stored after processing
        # (at-least-once), not everything poll returned.
        "enable.auto.offset.store": False,
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 200,
    }
    if assignor != "default":
        config["partition.assignment.strategy"] = assignor
    if commit == "auto":
        config["on_commit"] = committed
    consumer = Consumer(config)
    consumer.subscribe([topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked)

    def commit_sync(ends):
        try:
            done = consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in ends.items()],
                                   asynchronous=False)
        except KafkaException as e:
            emit("F", e.args[0].name())
            return False
        committed(None, done)
        return not any(tp.error for tp in done)

    while not stop.is_set():
        messages, batch = consumer.consume(num_messages=BATCH_RECORDS_MAX, timeout=0.1), []
        for m in messages:
            if m.error():
                if m.error().fatal():
                    emit("E", m.error().name())
                    sys.exit(1)
                emit("W", m.error().name())
                continue
            batch.append((m.partition(), m.offset(), m.value().decode()))
        if not batch:
            continue
        if commit == "before" and not commit_sync(batch_ends(batch)):
            continue  # not committed, so not processed: at most once

        def store(i):
            if commit == "auto":
                try:
                    consumer.store_offsets(offsets=[TopicPartition(topic, batch[i][0], batch[i][1] + 1)])
                except KafkaException as e:
                    emit("W", e.args[0].name())

        process(batch, delay_s, store)
        if commit == "after":
            commit_sync(batch_ends(batch))
    consumer.close()


KAFKA_PYTHON_ASSIGNORS = {
    "range": "kafka.coordinator.assignors.range:RangePartitionAssignor",
    "roundrobin": "kafka.coordinator.assignors.roundrobin:RoundRobinPartitionAssignor",
    "sticky": "kafka.coordinator.assignors.sticky.sticky_assignor:StickyPartitionAssignor",
    "cooperative-sticky": "kafka.coordinator.assignors.cooperative_sticky:CooperativeStickyAssignor",
}


def member_kafka_python(bootstrap, group, topic, assignor, commit, delay_s, stop):
    import importlib

    from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata
    from kafka import TopicPartition as KTopicPartition
    from kafka.errors import KafkaError

    owned = set()

    # kafka-python calls these on its IO thread.
    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            owned.difference_update(tp.partition for tp in revoked)
            emit("A", partitions_field(owned))

        def on_partitions_assigned(self, assigned):
            owned.update(tp.partition for tp in assigned)
            emit("A", partitions_field(owned))

        def on_partitions_lost(self, lost):
            self.on_partitions_revoked(lost)

    def auto_committed(offsets, result):
        if isinstance(result, Exception):
            emit("F", type(result).__name__)
        else:
            for tp, om in offsets.items():
                emit("C", tp.partition, om.offset)

    options = dict(
        bootstrap_servers=bootstrap, group_id=group,
        session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
        max_poll_interval_ms=MAX_POLL_MS, auto_offset_reset="earliest",
        enable_auto_commit=commit == "auto", auto_commit_interval_ms=200,
        default_offset_commit_callback=auto_committed,
        reconnect_backoff_ms=20, reconnect_backoff_max_ms=200, fetch_max_wait_ms=100,
    )
    if assignor != "default":
        module, _, name = KAFKA_PYTHON_ASSIGNORS[assignor].partition(":")
        options["partition_assignment_strategy"] = [getattr(importlib.import_module(module), name)]
    consumer = KafkaConsumer(**options)
    consumer.subscribe([topic], listener=Listener())

    def commit_sync(ends):
        try:
            consumer.commit({KTopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in ends.items()})
        except KafkaError as e:
            emit("F", type(e).__name__)
            return False
        for p, o in ends.items():
            emit("C", p, o)
        return True

    while not stop.is_set():
        try:
            polled = consumer.poll(timeout_ms=100, max_records=BATCH_RECORDS_MAX)
        except KafkaError as e:
            emit("W", type(e).__name__)
            time.sleep(0.1)
            continue
        batch = [(r.partition, r.offset, r.value.decode()) for records in polled.values() for r in records]
        if not batch:
            continue
        if commit == "before" and not commit_sync(batch_ends(batch)):
            continue
        process(batch, delay_s)
        if commit == "after":
            commit_sync(batch_ends(batch))
    consumer.close()


# ------------------------------------------------------------ the driver


class Event(NamedTuple):
    t: float
    seq: int
    member: str
    kind: str
    args: list


CHILDREN = []


class Timeline:
    """Member processes and every line they printed."""

    def __init__(self, bootstrap):
        self.bootstrap = bootstrap
        self.lock = threading.Lock()
        self.events = []
        self.members = []
        self.seq = 0

    def start(self, name, client, group, topic, assignor="default", commit="after", delay_ms=0):
        if client == "kafkajs":
            assert assignor in ("default", "roundrobin"), f"kafkajs has no {assignor} assignor"
            argv = ["node", os.path.join(HERE, "kafkajs_groups.js"), "member",
                    self.bootstrap, group, topic, commit, str(delay_ms)]
        else:
            argv = [sys.executable, os.path.abspath(__file__), "member", client,
                    self.bootstrap, group, topic, assignor, commit, str(delay_ms)]
        member = Member(self, name, argv)
        with self.lock:
            self.members.append(member)
        return member

    def add(self, member, kind, t, args):
        with self.lock:
            self.seq += 1
            self.events.append(Event(t, self.seq, member.name, kind, args))
            if kind == "A":
                member.owned = frozenset() if args[0] == "-" else frozenset(map(int, args[0].split(",")))
                member.assigned_at = t
            elif kind == "R":
                member.records.append((int(args[0]), int(args[1]), args[2]))
            elif kind == "C":
                member.commits.append((int(args[0]), int(args[1])))
            elif kind == "E":
                member.errors.append(" ".join(args))

    def until(self, what, condition, timeout_s):
        """Waits for `condition` (evaluated under the lock); fails with the
        members' state if it does not hold within `timeout_s`, or as soon as
        a member reports a fatal error or dies unasked."""
        deadline = time.time() + timeout_s
        while True:
            with self.lock:
                if condition():
                    return
                for m in self.members:
                    assert not m.errors, f"{m.name} failed: {m.errors} while waiting for {what}"
                    code = m.proc.poll()
                    assert code is None or m.stopping, \
                        f"{m.name} exited with {code} while waiting for {what}; {self.state()}"
            assert time.time() < deadline, f"waited {timeout_s} s for {what}; {self.state()}"
            time.sleep(0.02)

    def state(self):
        return "; ".join(f"{m.name} owns {sorted(m.owned)}, processed {len(m.records)}"
                         for m in self.members)

    def processed(self, members=None):
        return {(p, o) for m in members or self.members for p, o, _ in m.records}


class Member:
    def __init__(self, timeline, name, argv):
        self.timeline, self.name = timeline, name
        self.owned, self.assigned_at = frozenset(), None
        self.records, self.commits, self.errors = [], [], []
        self.stopping = False
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        CHILDREN.append(self.proc)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            kind, t, *args = line.split()
            self.timeline.add(self, kind, float(t), args)

    def leave(self):
        """Asks the member to close its consumer, which leaves the group."""
        self.stopping = True
        self.proc.stdin.close()

    def kill(self):
        self.stopping = True
        self.proc.kill()  # SIGKILL
        self.proc.wait()
        self.reader.join(5)

    def wait_closed(self, timeout_s=20):
        code = self.proc.wait(timeout_s)
        self.reader.join(5)
        assert code == 0, f"{self.name} exited with {code}: {self.errors}"
        with self.timeline.lock:
            last = [e.kind for e in self.timeline.events if e.member == self.name][-1:]
        assert last == ["X"], f"{self.name} did not close cleanly: {last}"


def settled(members, n_partitions, sizes=None):
    """Whether `members` own every partition exactly once (in `sizes` shares)."""
    owned = [m.owned for m in members]
    if sum(map(len, owned)) != n_partitions or frozenset().union(*owned) != frozenset(range(n_partitions)):
        return False
    return sizes is None or sorted(map(len, owned)) == sorted(sizes)


def settled_at(members):
    """When the last of `members` printed its current assignment."""
    return max(m.assigned_at for m in members)


class Producer:
    """A confluent-kafka producer of numbered records (value v-I, key kI) to
    partition I mod n_partitions, keeping what each delivery report said."""

    def __init__(self, bootstrap, topic, n_partitions, idempotent=False):
        from confluent_kafka import Producer as ConfluentProducer
        self.topic, self.n_partitions = topic, n_partitions
        self.producer = ConfluentProducer({
            "bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
            "enable.idempotence": idempotent, "message.timeout.ms": 60000,
            "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 200,
        })
        self.lock = threading.Lock()
        self.delivered, self.failed, self.sent = {}, [], 0

    def send(self, n):
        for _ in range(n):
            i = self.sent
            self.sent += 1
            while True:
                try:
                    self.producer.produce(self.topic, key=f"k{i}", value=f"v-{i}",
                                          partition=i % self.n_partitions, on_delivery=self._report)
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.producer.poll(0)

    def _report(self, err, msg):
        with self.lock:
            if err:
                self.failed.append((msg.value().decode(), err.name()))
            else:
                self.delivered[(msg.partition(), msg.offset())] = msg.value().decode()

    def flush(self, timeout_s=60):
        left = self.producer.flush(timeout_s)
        assert left == 0, f"{left} records undelivered after {timeout_s} s"
        assert not self.failed, f"delivery failures: {self.failed[:5]}"
        return dict(self.delivered)

    def steady(self, per_s, stop):
        """Produces `per_s` records a second on a thread until `stop` is set."""
        def run():
            while not stop.is_set():
                self.send(max(1, per_s // 20))
                time.sleep(0.05)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def end_offsets(self):
        ends = defaultdict(int)
        with self.lock:
            for p, o in self.delivered:
                ends[p] = max(ends[p], o + 1)
        return dict(ends)


def create_topic(bootstrap, topic, n_partitions):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, n_partitions, 1)], request_timeout=15)[topic].result(20)


def committed_offsets(bootstrap, group, topic, n_partitions):
    """The group's committed offsets (OffsetFetch) without joining it; 0 where
    nothing is committed (the members read from the earliest offset)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        found = c.committed([TopicPartition(topic, p) for p in range(n_partitions)], timeout=15)
    finally:
        c.close()
    for tp in found:
        assert not tp.error, f"OffsetFetch {group} {topic}/{tp.partition}: {tp.error}"
    return {tp.partition: max(tp.offset, 0) for tp in found}


def describe_group(bootstrap, group):
    from confluent_kafka.admin import AdminClient
    # Keep the client referenced until the result is in: a client that is
    # garbage-collected takes its pending requests with it.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.describe_consumer_groups([group], request_timeout=15)[group].result(20)


def check_timeline(events, produced, guarantee):
    """Judges what members printed, in time order, against what was produced
    ({(partition, offset): value}). Holds for either guarantee:
      - every record processed is the one produced at its offset;
      - within one assignment, a member reads a partition without gaps or
        repeats;
      - a member given a partition starts at or after every commit
        acknowledged before (committed records are not processed again).
    at-least-once: it starts no further than one past the highest offset
      processed so far (nothing skipped), commits never pass what was
      processed, and every record is processed in the end.
    at-most-once: a record is processed only after a commit past it, and
      never twice.
    Returns counts of records processed, processed again, and never
    processed."""
    committed = defaultdict(int)  # partition -> highest acknowledged commit so far
    floor = {}  # (member, partition) -> committed when the member was given it
    expect = {}  # (member, partition) -> next offset of the member's assignment
    owned = defaultdict(frozenset)
    highest = defaultdict(lambda: -1)  # partition -> highest offset processed so far
    times = Counter()
    for ev in sorted(events, key=lambda e: (e.t, e.seq)):
        m = ev.member
        if ev.kind == "A":
            now = frozenset() if ev.args[0] == "-" else frozenset(map(int, ev.args[0].split(",")))
            for p in now - owned[m]:
                expect.pop((m, p), None)
                floor[(m, p)] = committed[p]
            owned[m] = now
        elif ev.kind == "C":
            p, o = int(ev.args[0]), int(ev.args[1])
            if guarantee == "at-least-once":
                assert o <= highest[p] + 1, \
                    f"{m} committed {p}/{o} but only up to {p}/{highest[p]} was processed"
            committed[p] = max(committed[p], o)
        elif ev.kind == "R":
            p, o, value = int(ev.args[0]), int(ev.args[1]), ev.args[2]
            assert produced.get((p, o)) == value, \
                f"{m} read {value} at {p}/{o}, where {produced.get((p, o))} was written"
            if (m, p) in expect:
                assert o == expect[(m, p)], \
                    f"{m} read {p}/{o} right after {p}/{expect[(m, p)] - 1} in one assignment"
            else:
                lowest = floor.get((m, p), committed[p])
                assert o >= lowest, (f"{m} started partition {p} at {o}, below the commit of {lowest} "
                                     "acknowledged before it got the partition")
                if guarantee == "at-least-once":
                    assert o <= highest[p] + 1, (f"{m} started partition {p} at {o} though only up to "
                                                 f"{highest[p]} was processed: records skipped")
            if guarantee == "at-most-once":
                assert times[(p, o)] == 0, f"{m} processed {p}/{o} a second time"
                assert o < committed[p], f"{m} processed {p}/{o} before a commit past it"
            expect[(m, p)] = o + 1
            times[(p, o)] += 1
            highest[p] = max(highest[p], o)
    missing = sorted(k for k in produced if times[k] == 0)
    if guarantee == "at-least-once":
        assert not missing, f"{len(missing)} records never processed, the first {missing[:5]}"
    return {"processed": len(times), "again": sum(n - 1 for n in times.values()), "lost": len(missing)}


def events_of(timeline, names):
    with timeline.lock:
        return [e for e in timeline.events if e.member in names]


# ---------------------------------------------------------- the scenarios


def scenario_share(bootstrap, client, assignor):
    """Three members of one group on six partitions own two each and together
    process every record exactly once; the group reports the assignor as its
    protocol."""
    n = 1200
    topic = group = f"share-{client}-{assignor}"
    create_topic(bootstrap, topic, 6)
    tl = Timeline(bootstrap)
    members = [tl.start(f"m{i}", client, group, topic, assignor) for i in range(3)]
    tl.until("three members with two partitions each", lambda: settled(members, 6, [2, 2, 2]), 40)
    owned = {m.name: sorted(m.owned) for m in members}
    described = describe_group(bootstrap, group)
    protocol = {"default": "RoundRobinAssigner"}.get(assignor, assignor) if client == "kafkajs" else assignor
    assert described.state.name == "STABLE", described.state
    assert len(described.members) == 3, described.members
    assert described.partition_assignor == protocol, described.partition_assignor
    by_member = sorted(sorted(tp.partition for tp in d.assignment.topic_partitions) for d in described.members)
    assert by_member == sorted(owned.values()), f"DescribeGroups says {by_member}, members say {owned}"
    producer = Producer(bootstrap, topic, 6)
    producer.send(n)
    produced = producer.flush()
    tl.until(f"{n} records processed", lambda: len(tl.processed()) >= n, 40)
    for m in members:
        m.leave()
    for m in members:
        m.wait_closed()
    stats = check_timeline(tl.events, produced, "at-least-once")
    assert stats["again"] == 0, f"{stats['again']} records processed twice in a stable group"
    for m in members:
        read = {p for p, _, _ in m.records}
        assert read <= set(owned[m.name]), f"{m.name} owns {owned[m.name]} but read {sorted(read)}"
    print(f"OK share {client} {assignor}: 3 members own {sorted(owned.values())}, "
          f"{n} records processed once, group protocol {described.partition_assignor}")


def scenario_fanout(bootstrap):
    """Three groups (a confluent-kafka, a kafka-python and a kafkajs member)
    on one topic each process every record once; a fourth group started
    later, while the same producer goes on, reads the retained history from
    the earliest offset."""
    topic = "fanout"
    create_topic(bootstrap, topic, 6)
    producer = Producer(bootstrap, topic, 6)
    producer.send(600)
    producer.flush()
    tl = Timeline(bootstrap)
    members = [tl.start(f"fan-{c}", c, f"fan-{c}", topic, commit="auto")
               for c in ("confluent", "kafka-python", "kafkajs")]
    tl.until("each group's member owns all partitions", lambda: all(settled([m], 6) for m in members), 40)
    producer.send(600)
    producer.flush()
    tl.until("1200 records processed by each group", lambda: all(len(m.records) >= 1200 for m in members), 40)
    late = tl.start("fan-late", "confluent", "fan-late", topic, commit="auto")
    producer.send(300)  # the same producer, unchanged
    produced = producer.flush()
    everyone = members + [late]
    tl.until("1500 records processed by each group",
             lambda: all(len({(p, o) for p, o, _ in m.records}) >= 1500 for m in everyone), 40)
    for m in everyone:
        m.leave()
    for m in everyone:
        m.wait_closed()
    for m in everyone:
        stats = check_timeline(events_of(tl, {m.name}), produced, "at-least-once")
        assert stats["again"] == 0 and stats["processed"] == 1500, (m.name, stats)
    first = {m.name: min(o for p, o, _ in m.records if p == 0) for m in everyone}
    assert first["fan-late"] == 0, first
    print(f"OK fanout: groups {', '.join(m.name for m in members)} each processed all 1500 records "
          "once; fan-late, started after 1200, read all 1500 from offset 0")


def scenario_rebalance(bootstrap, client, assignor):
    """Four members (commit after processing) on six partitions while records
    flow: one leaves (close), then one is killed with SIGKILL. Each time the
    partitions it owned belong to the others within MOVE_BOUND_S; records the
    leaver committed are not processed again, and after the kill only
    records past the last acknowledged commit are."""
    topic = group = f"rebalance-{client}-{assignor}"
    create_topic(bootstrap, topic, 6)
    tl = Timeline(bootstrap)
    members = [tl.start(f"m{i}", client, group, topic, assignor) for i in range(4)]
    tl.until("four members sharing six partitions", lambda: settled(members, 6, [1, 1, 2, 2]), 40)
    producer = Producer(bootstrap, topic, 6)
    stop = threading.Event()
    flow = producer.steady(300, stop)
    tl.until("records flowing", lambda: len(tl.processed()) >= 200, 20)
    leaver, victim, survivors = members[3], members[2], members[:2]
    left = time.time()
    leaver.leave()
    tl.until("the leaver's partitions moved", lambda: settled(members[:3], 6), MOVE_BOUND_S + 10)
    moved_after_leave_s = settled_at(members[:3]) - left
    leaver.wait_closed()
    seen = len(tl.processed())
    tl.until("records flowing to three", lambda: len(tl.processed()) >= seen + 200, 20)
    killed = time.time()
    victim.kill()
    tl.until("the killed member's partitions moved", lambda: settled(survivors, 6), MOVE_BOUND_S + 10)
    moved_after_kill_s = settled_at(survivors) - killed
    seen = len(tl.processed())
    tl.until("records flowing to two", lambda: len(tl.processed()) >= seen + 200, 20)
    stop.set()
    flow.join()
    produced = producer.flush()
    tl.until("every record processed", lambda: tl.processed() >= set(produced), 30)
    for m in survivors:
        m.leave()
    for m in survivors:
        m.wait_closed()
    stats = check_timeline(tl.events, produced, "at-least-once")
    again = Counter((p, o) for m in tl.members for p, o, _ in m.records)
    leaver_again = [(p, o) for p, o, _ in leaver.records if again[(p, o)] > 1]
    assert not leaver_again, f"records the leaver committed were processed again: {leaver_again[:5]}"
    victim_last = {}
    for p, o in victim.commits:
        victim_last[p] = max(victim_last.get(p, 0), o)
    assert moved_after_leave_s <= MOVE_BOUND_S, \
        f"the leaver's partitions moved after {moved_after_leave_s:.2f} s (bound {MOVE_BOUND_S} s)"
    assert moved_after_kill_s <= MOVE_BOUND_S, \
        f"the killed member's partitions moved after {moved_after_kill_s:.2f} s (bound {MOVE_BOUND_S} s)"
    print(f"OK rebalance {client} {assignor}: partitions moved {moved_after_leave_s:.2f} s after a "
          f"leave and {moved_after_kill_s:.2f} s after kill -9 (bound {MOVE_BOUND_S} s); "
          f"{len(produced)} records, {stats['again']} processed again, all after the killed "
          f"member's last acknowledged commits {dict(sorted(victim_last.items()))}")


def crash_run(bootstrap, client, commit):
    """One member (committing as `commit` says) is killed with SIGKILL
    mid-stream; a new member of the group resumes exactly at the offsets
    committed then, and the guarantee of the commit strategy holds."""
    n, n_partitions = 900, 3
    topic = group = f"crash-{client}-{commit}"
    create_topic(bootstrap, topic, n_partitions)
    producer = Producer(bootstrap, topic, n_partitions)
    producer.send(n)
    produced = producer.flush()
    ends = producer.end_offsets()
    tl = Timeline(bootstrap)
    first = tl.start("first", client, group, topic, commit=commit, delay_ms=3)
    tl.until("a third processed", lambda: len(first.records) >= n // 3, 40)
    first.kill()
    time.sleep(0.5)  # a commit sent just before the kill is answered
    at_kill = committed_offsets(bootstrap, group, topic, n_partitions)
    second = tl.start("second", client, group, topic, commit=commit)
    tl.until("every partition read to its end",
             lambda: all(max([o for q, o, _ in first.records + second.records if q == p], default=-1)
                         == ends[p] - 1 for p in range(n_partitions)), 40)
    second.leave()
    second.wait_closed()
    guarantee = "at-most-once" if commit == "before" else "at-least-once"
    stats = check_timeline(tl.events, produced, guarantee)
    processed_all = tl.processed()
    for p in range(n_partitions):
        started = [o for q, o, _ in second.records if q == p][:1]
        assert started in ([], [at_kill[p]]), \
            f"{commit}: the new member started partition {p} at {started}, the group had committed {at_kill[p]}"
        acknowledged = max([o for q, o in first.commits if q == p], default=0)
        assert at_kill[p] >= acknowledged, \
            f"{commit}: partition {p} committed {at_kill[p]} after the kill, below the acknowledged {acknowledged}"
        processed = max([o for q, o, _ in first.records if q == p], default=-1)
        if guarantee == "at-least-once":
            assert at_kill[p] <= processed + 1, \
                f"{commit}: partition {p} committed {at_kill[p]}, past the processed {processed}"
        else:
            lost = [o for o in range(ends[p]) if (p, o) not in processed_all]
            assert all(processed < o < at_kill[p] for o in lost), \
                f"{commit}: partition {p} lost {lost}, not only records committed but not processed"
    return (f"{commit}: killed after {len(first.records)} records, committed {at_kill}, "
            f"{stats['again']} processed again, {stats['lost']} lost")


def scenario_commit_modes(bootstrap, client):
    """Commit after processing and auto-commit give at-least-once, commit
    before processing at-most-once, each across a kill -9 of the member."""
    results = {}

    def run(commit):
        try:
            results[commit] = crash_run(bootstrap, client, commit)
        except BaseException as e:  # reported below, with the other runs
            results[commit] = e

    threads = [threading.Thread(target=run, args=(c,)) for c in ("after", "auto", "before")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = {c: r for c, r in results.items() if isinstance(r, BaseException)}
    if failed:
        raise AssertionError(f"{client}: {failed}")
    print(f"OK commit modes {client}: " + "; ".join(results[c] for c in ("after", "auto", "before")))


def read_all(consumer_poll, n, timeout_s=30):
    got, deadline = [], time.time() + timeout_s
    while len(got) < n:
        assert time.time() < deadline, f"read {len(got)} of {n} records"
        got.extend(consumer_poll())
    return got


def scenario_admin_confluent(bootstrap):
    """confluent-kafka's AdminClient on a group: list, describe, committed
    offsets and lag while it has a member; altering offsets and deleting the
    group refused then, accepted once it is empty, and the next member
    starting where the offsets were set."""
    from confluent_kafka import (Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError,
                                 KafkaException, TopicPartition)
    from confluent_kafka.admin import AdminClient, OffsetSpec

    topic = group = "admin-confluent"
    create_topic(bootstrap, topic, 3)
    producer = Producer(bootstrap, topic, 3)
    producer.send(300)
    producer.flush()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": SESSION_MS,
              "heartbeat.interval.ms": HEARTBEAT_MS, "max.poll.interval.ms": MAX_POLL_MS,
              "auto.offset.reset": "earliest", "enable.auto.commit": False}
    tps = [TopicPartition(topic, p) for p in range(3)]

    def poll(c):
        return lambda: [m for m in [c.poll(0.1)] if m is not None and not m.error()]

    def offsets():
        result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(20)
        return {tp.partition: tp.offset for tp in result.topic_partitions if tp.offset >= 0}

    def lag():
        # As kafka-consumer-groups computes it: the high watermark (ListOffsets
        # latest) less the committed offset.
        latest = admin.list_offsets({tp: OffsetSpec.latest() for tp in tps})
        committed = offsets()
        return {tp.partition: f.result(20).offset - committed[tp.partition] for tp, f in latest.items()}

    def alter(to):
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, o) for p, o in to.items()])
        try:
            result = admin.alter_consumer_group_offsets([request])[group].result(20)
        except KafkaException as e:
            return e.args[0].code()
        errors = {tp.error.code() for tp in result.topic_partitions if tp.error}
        return errors.pop() if errors else None

    def delete():
        try:
            admin.delete_consumer_groups([group], request_timeout=15)[group].result(20)
        except KafkaException as e:
            return e.args[0].code()

    member = Consumer(config)
    member.subscribe([topic])
    assert len(read_all(poll(member), 300)) == 300
    member.commit(offsets=[TopicPartition(topic, 0, 40), TopicPartition(topic, 1, 50),
                           TopicPartition(topic, 2, 60)], asynchronous=False)
    member.poll(0.1)  # a live member: poll well within max.poll.interval.ms

    listed = admin.list_consumer_groups(request_timeout=15).result(20)
    states = {g.group_id: g.state for g in listed.valid}
    assert states.get(group) == ConsumerGroupState.STABLE, states
    described = admin.describe_consumer_groups([group], request_timeout=15)[group].result(20)
    assert described.state == ConsumerGroupState.STABLE, described.state
    assert described.partition_assignor == "range", described.partition_assignor
    assert len(described.members) == 1
    assert sorted(tp.partition for tp in described.members[0].assignment.topic_partitions) == [0, 1, 2]
    assert offsets() == {0: 40, 1: 50, 2: 60}, offsets()
    assert lag() == {0: 60, 1: 50, 2: 40}, lag()
    # The consumer's own view: get_watermark_offsets and committed.
    highs = {tp.partition: member.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
    mine = {tp.partition: tp.offset for tp in member.committed(tps, timeout=10)}
    assert {p: highs[p] - mine[p] for p in highs} == {0: 60, 1: 50, 2: 40}, (highs, mine)

    refused = alter({0: 10, 1: 20, 2: 0})
    assert refused == KafkaError.UNKNOWN_MEMBER_ID, f"altering a live group's offsets: {refused}"
    refused = delete()
    assert refused == KafkaError.NON_EMPTY_GROUP, f"deleting a live group: {refused}"
    assert offsets() == {0: 40, 1: 50, 2: 60}, "a refused change changed nothing"
    member.poll(0.1)
    member.close()

    described = admin.describe_consumer_groups([group], request_timeout=15)[group].result(20)
    assert described.state == ConsumerGroupState.EMPTY and not described.members, described
    assert alter({0: 10, 1: 20, 2: 0}) is None
    assert offsets() == {0: 10, 1: 20, 2: 0}, offsets()
    assert lag() == {0: 90, 1: 80, 2: 100}, lag()
    member = Consumer(config)
    member.subscribe([topic])
    got = read_all(poll(member), 270)
    first = {p: min(m.offset() for m in got if m.partition() == p) for p in range(3)}
    assert first == {0: 10, 1: 20, 2: 0}, f"the next member started at {first}"
    member.close()

    assert delete() is None
    listed = admin.list_consumer_groups(request_timeout=15).result(20)
    assert group not in {g.group_id for g in listed.valid}, listed.valid
    assert offsets() == {}, offsets()
    described = admin.describe_consumer_groups([group], request_timeout=15)[group].result(20)
    assert described.state == ConsumerGroupState.DEAD, described.state
    assert delete() == KafkaError.GROUP_ID_NOT_FOUND
    print("OK admin confluent: list, describe, offsets and lag of a live group; alter refused with "
          "UNKNOWN_MEMBER_ID and delete with NON_EMPTY_GROUP; both accepted once empty")


def scenario_admin_kafka_python(bootstrap):
    """kafka-python's KafkaAdminClient on a group: the same as
    scenario_admin_confluent, with reset_group_offsets, delete_group_offsets
    (OffsetDelete) and lag from kafka-python's own admin command line."""
    from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
    from kafka import errors as Errors
    from kafka.admin import KafkaAdminClient, OffsetSpec

    topic = group = "admin-kafka-python"
    create_topic(bootstrap, topic, 3)
    producer = Producer(bootstrap, topic, 3)
    producer.send(300)
    producer.flush()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    tps = [TopicPartition(topic, p) for p in range(3)]
    options = dict(bootstrap_servers=bootstrap, group_id=group, session_timeout_ms=SESSION_MS,
                   heartbeat_interval_ms=HEARTBEAT_MS, max_poll_interval_ms=MAX_POLL_MS,
                   auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=100)

    def poll(c):
        return lambda: [r for records in c.poll(timeout_ms=100).values() for r in records]

    def offsets():
        return {tp.partition: om.offset for tp, om in admin.list_group_offsets(group)[group].items()
                if om.offset >= 0}

    def cli_lag():
        # kafka-python's `groups list-offsets`: latest offset less committed.
        out = subprocess.run([sys.executable, "-m", "kafka.admin", "-b", bootstrap, "--format", "json",
                              "groups", "list-offsets", "-g", group],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        return {int(p): v["lag"] for p, v in json.loads(out)[topic].items()}

    member = KafkaConsumer(**options)
    member.subscribe([topic])
    assert len(read_all(poll(member), 300)) == 300
    member.commit({tps[0]: OffsetAndMetadata(40, "", -1), tps[1]: OffsetAndMetadata(50, "", -1),
                   tps[2]: OffsetAndMetadata(60, "", -1)})

    groups = {g["group_id"]: g for g in admin.list_groups()}
    assert group in groups and groups[group]["protocol_type"] == "consumer", groups
    described = admin.describe_groups([group])[group]
    assert described["error"] is None, described
    assert described["group_state"] == "Stable" and described["protocol_type"] == "consumer", described
    assert described["protocol_data"] == "range", described["protocol_data"]
    assert len(described["members"]) == 1, described["members"]
    assignment = described["members"][0]["member_assignment"]
    assert sorted(p for t in assignment["assigned_partitions"] for p in t["partitions"]) == [0, 1, 2], assignment
    assert offsets() == {0: 40, 1: 50, 2: 60}, offsets()
    assert cli_lag() == {0: 60, 1: 50, 2: 40}, cli_lag()
    ends = member.end_offsets(tps)
    assert {tp.partition: ends[tp] - member.committed(tp) for tp in tps} == {0: 60, 1: 50, 2: 40}

    refused = admin.alter_group_offsets(group, {tp: OffsetAndMetadata(5, "", -1) for tp in tps})
    assert set(refused.values()) == {Errors.UnknownMemberIdError}, refused
    refused = admin.reset_group_offsets(group, {tp: OffsetSpec.EARLIEST for tp in tps})
    assert {r["error"] for r in refused.values()} == {Errors.UnknownMemberIdError}, refused
    refused = admin.delete_groups([group])
    assert refused == {group: "NonEmptyGroupError"}, refused
    refused = admin.delete_group_offsets(group, [tps[2]])
    assert refused == {tps[2]: Errors.GroupSubscribedToTopicError}, refused
    assert offsets() == {0: 40, 1: 50, 2: 60}, "a refused change changed nothing"
    member.close()

    described = admin.describe_groups([group])[group]
    assert described["group_state"] == "Empty" and not described["members"], described
    done = admin.alter_group_offsets(group, {tps[0]: OffsetAndMetadata(10, "", -1),
                                             tps[1]: OffsetAndMetadata(20, "", -1)})
    assert set(done.values()) == {Errors.NoError}, done
    done = admin.reset_group_offsets(group, {tps[2]: OffsetSpec.EARLIEST})
    assert done == {tps[2]: {"error": Errors.NoError, "offset": 0}}, done
    assert offsets() == {0: 10, 1: 20, 2: 0}, offsets()
    assert cli_lag() == {0: 90, 1: 80, 2: 100}, cli_lag()
    member = KafkaConsumer(**options)
    member.subscribe([topic])
    got = read_all(poll(member), 270)
    first = {p: min(r.offset for r in got if r.partition == p) for p in range(3)}
    assert first == {0: 10, 1: 20, 2: 0}, f"the next member started at {first}"
    member.close()

    done = admin.delete_group_offsets(group, [tps[2]])
    assert done == {tps[2]: Errors.NoError}, done
    assert offsets() == {0: 10, 1: 20}, offsets()
    assert admin.delete_groups([group]) == {group: "OK"}
    assert group not in {g["group_id"] for g in admin.list_groups()}
    assert offsets() == {}, offsets()
    assert admin.delete_groups([group]) == {group: "GroupIdNotFoundError"}
    admin.close()
    print("OK admin kafka-python: list, describe, offsets and lag of a live group; alter and reset "
          "refused with UNKNOWN_MEMBER_ID, delete with NON_EMPTY_GROUP, OffsetDelete with "
          "GROUP_SUBSCRIBED_TO_TOPIC; all accepted once empty")


def scenario_restart(bootstrap, n):
    """Two members (commit after processing) and an idempotent producer keep
    going while the test kills the server with SIGKILL and restarts it (it
    starts once this prints READY): every delivered record is processed, and
    a member given a partition never starts below a commit acknowledged
    before, so the group resumes from its committed offsets."""
    n = int(n)
    topic = group = "restart"
    create_topic(bootstrap, topic, 3)
    tl = Timeline(bootstrap)
    members = [tl.start(f"m{i}", "confluent", group, topic) for i in range(2)]
    tl.until("two members sharing three partitions", lambda: settled(members, 3), 40)
    producer = Producer(bootstrap, topic, 3, idempotent=True)
    print("READY", flush=True)
    started = time.time()
    while producer.sent < n:  # about 300 records a second
        producer.send(15)
        time.sleep(0.05)
    produced = producer.flush(90)
    tl.until("every delivered record processed", lambda: tl.processed() >= set(produced), 60)
    tl.until("the members settled", lambda: settled(members, 3), 30)
    for m in members:
        m.leave()
    for m in members:
        m.wait_closed()
    stats = check_timeline(tl.events, produced, "at-least-once")
    final = committed_offsets(bootstrap, group, topic, 3)
    ends = producer.end_offsets()
    assert final == ends, f"after the members left the group committed {final}, the logs end at {ends}"
    resumes = sum(1 for e in tl.events if e.kind == "A" and e.args[0] != "-")
    print(f"OK restart: {len(produced)} records in {time.time() - started:.1f} s, all processed, "
          f"{stats['again']} again (after the last acknowledged commits), {resumes} assignments, "
          f"final commits {final}")


SCENARIOS = {
    "share": scenario_share,  # BOOTSTRAP CLIENT ASSIGNOR
    "fanout": scenario_fanout,  # BOOTSTRAP
    "rebalance": scenario_rebalance,  # BOOTSTRAP CLIENT ASSIGNOR
    "commit-modes": scenario_commit_modes,  # BOOTSTRAP CLIENT
    "admin-confluent": scenario_admin_confluent,  # BOOTSTRAP
    "admin-kafka-python": scenario_admin_kafka_python,  # BOOTSTRAP
    "restart": scenario_restart,  # BOOTSTRAP N
}


def main():
    if sys.argv[1] == "member":
        # member CLIENT BOOTSTRAP GROUP TOPIC ASSIGNOR COMMIT DELAY_MS
        client, bootstrap, group, topic, assignor, commit, delay_ms = sys.argv[2:9]
        run_member(client, bootstrap, group, topic, assignor, commit, int(delay_ms))
        return

    def watchdog():
        time.sleep(SCENARIO_LIFETIME_S)
        print(f"scenario {sys.argv[1:]} did not finish within {SCENARIO_LIFETIME_S} s", file=sys.stderr,
              flush=True)
        for child in CHILDREN:
            child.kill()
        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        SCENARIOS[sys.argv[1]](*sys.argv[2:])
    finally:
        for child in CHILDREN:
            if child.poll() is None:
                child.kill()


if __name__ == "__main__":
    main()
