"""A consume-transform-produce pipeline with confluent-kafka's transactions
that keeps going while the broker is killed and restarted under it.

Usage: python_txn_pipeline.py BOOTSTRAP TOPIC_IN TOPIC_OUT GROUP TXN_ID TOTAL

Reads TOPIC_IN in read_committed with the group GROUP (no auto commit),
writes `out-<value>` to TOPIC_OUT for every record and sends its consumer
offsets in the same transaction, committing every few records. It stops
once the group's committed offsets reach TOTAL records (the input's
end, summed over partitions). Every twentieth transaction it aborts on
purpose once its records are written.

On an error that needs an abort it aborts and rewinds the consumer to the
group's committed offsets; on a fatal one (fenced) it starts a new
producer with the same transactional id and rewinds; retriable errors
are retried. Prints one line per event: `COMMIT <positions> <records>`,
`ABORT <error or "chosen">`, `REINIT <error>`, `RETRY <what> <error>`,
`IDLE <positions>` when nothing came for 5 s, and `DONE` at the end.
"""

import os
import sys
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

bootstrap, topic_in, topic_out, group, txn_id, total = sys.argv[1:7]
total = int(total)
STARTED = time.monotonic()
PER_TXN = 7
# Every so many transactions are aborted on purpose, after their records
# are written.
ABORT_EVERY = 20
OP_TIMEOUT_S = 10
DEADLINE_S = 240
# A broker that was just killed is back within a second or two: retry soon
# rather than after librdkafka's default backoff of up to ten seconds.
COMMON = {
    "bootstrap.servers": bootstrap,
    "reconnect.backoff.ms": 50,
    "reconnect.backoff.max.ms": 500,
    "retry.backoff.ms": 50,
    "socket.connection.setup.timeout.ms": 3000,
    # With its only broker down librdkafka re-bootstraps and decommissions
    # the broker it knew; a send_offsets_to_transaction() waiting on that
    # broker as group coordinator then hangs past its timeout
    # (librdkafka issues 5456 and 5511). Keep the broker instead.
    "metadata.recovery.strategy": "none",
}
if os.environ.get("WEIR_PIPELINE_DEBUG"):
    COMMON["debug"] = os.environ["WEIR_PIPELINE_DEBUG"]


def say(line):
    print(f"{line} @{time.monotonic() - STARTED:.2f}", flush=True)


def new_producer():
    p = Producer({
        **COMMON,
        "transactional.id": txn_id,
        "transaction.timeout.ms": 15000,
        "message.timeout.ms": 14000,
    })
    retrying(lambda: p.init_transactions(OP_TIMEOUT_S), "init_transactions")
    return p


def retrying(op, what):
    """Runs `op` until it succeeds or fails with a non-retriable error."""
    give_up = time.monotonic() + DEADLINE_S
    while True:
        try:
            return op()
        except KafkaException as e:
            err = e.args[0]
            if not err.retriable() or time.monotonic() > give_up:
                raise
            say(f"RETRY {what} {err.name()}")
            time.sleep(0.1)


def rewind(c):
    """Puts the consumer back at the group's committed offsets."""
    assigned = c.assignment()
    if not assigned:
        return
    committed = retrying(lambda: c.committed(assigned, OP_TIMEOUT_S), "committed")
    for tp in committed:
        if tp.offset < 0:
            tp.offset = OFFSET_BEGINNING
        retrying(lambda: c.seek(tp), "seek")


def all_committed():
    """Whether the group's committed offsets reach `total` (at most once
    a second: it asks the broker)."""
    global last_check
    if time.monotonic() - last_check < 1:
        return False
    last_check = time.monotonic()
    try:
        parts = c.list_topics(topic_in, timeout=OP_TIMEOUT_S).topics[topic_in].partitions
        committed = c.committed(
            [TopicPartition(topic_in, p) for p in parts], OP_TIMEOUT_S
        )
    except KafkaException as e:
        say(f"RETRY committed {e.args[0].name()}")
        return False
    return sum(max(tp.offset, 0) for tp in committed) >= total


last_check = 0.0
c = Consumer({
    **COMMON,
    "group.id": group,
    "isolation.level": "read_committed",
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "session.timeout.ms": 10000,
    "heartbeat.interval.ms": 1000,
    # A rewind refetches at once rather than after a long poll at the end.
    "fetch.wait.max.ms": 50,
})
# A rebalance (the consumer rejoins after a restart) puts the consumer back
# at the committed offsets: whatever the open transaction holds from
# before it must be aborted, or it would be written twice.
rebalances = [0]


def rebalanced(consumer, partitions):
    rebalances[0] += 1


c.subscribe([topic_in], on_assign=rebalanced, on_revoke=rebalanced, on_lost=rebalanced)
p = new_producer()
p.begin_transaction()
pending = 0
txns = 0
last_message = time.monotonic()
began_at = rebalances[0]
give_up = time.monotonic() + DEADLINE_S
while time.monotonic() < give_up:
    m = c.poll(0.1)
    if m is not None:
        last_message = time.monotonic()
    elif pending == 0 and all_committed():
        break
    elif time.monotonic() - last_message > 5:
        # Say where it stands when nothing comes, to tell a stuck broker
        # from a stuck client.
        last_message = time.monotonic()
        stands = []
        for tp in c.position(c.assignment()):
            low, high = c.get_watermark_offsets(tp, timeout=2, cached=False)
            stands.append(f"{tp.partition}:{tp.offset}/{high}")
        say(f"IDLE {' '.join(stands)} pending {pending}")
    if m is not None and m.error() is None:
        p.produce(topic_out, key=m.key(), value=b"out-" + m.value())
        pending += 1
    elif m is not None and m.error().code() != KafkaError._PARTITION_EOF:
        say(f"CONSUMER {m.error().name()}")
    p.poll(0)
    if pending < PER_TXN and not (pending > 0 and m is None):
        continue
    txns += 1
    try:
        if rebalances[0] != began_at:
            raise KafkaException(
                KafkaError(KafkaError._STATE, "rebalanced", txn_requires_abort=True)
            )
        if txns % ABORT_EVERY == 0:
            # The records reach the log first, so readers must skip them.
            p.flush(OP_TIMEOUT_S)
            raise KafkaException(
                KafkaError(KafkaError._STATE, "chosen", txn_requires_abort=True)
            )
        positions = c.position(c.assignment())
        p.send_offsets_to_transaction(
            positions, c.consumer_group_metadata(), OP_TIMEOUT_S
        )
        retrying(lambda: p.commit_transaction(OP_TIMEOUT_S), "commit_transaction")
        offsets = sum(max(tp.offset, 0) for tp in positions)
        say(f"COMMIT {offsets} {pending}")
        pending = 0
    except KafkaException as e:
        err = e.args[0]
        pending = 0
        if err.txn_requires_abort():
            say(f"ABORT {err.str()}")
            retrying(lambda: p.abort_transaction(OP_TIMEOUT_S), "abort_transaction")
        else:
            # Fatal (fenced, or a retriable error outlasting its deadline):
            # a new producer with the same id fences the old one and aborts
            # whatever it left open.
            say(f"REINIT {err.name()}")
            p = new_producer()
        rewind(c)
    p.begin_transaction()
    began_at = rebalances[0]
else:
    say("TIMEOUT")
    sys.exit(1)

c.close()
say("DONE")
