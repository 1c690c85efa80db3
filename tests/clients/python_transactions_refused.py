"""Transactional producers are refused at once, not after their timeout.

Usage: python_transactions_refused.py BOOTSTRAP

Until Weir coordinates transactions, FindCoordinator for a transactional id
answers an error every client treats as fatal. Each client's
init_transactions() is given 30 s; it must fail, and within 10 s. Prints one
line per client with the error and the time taken.
"""

import sys
import time

from confluent_kafka import KafkaException, Producer
from kafka import KafkaProducer

bootstrap = sys.argv[1]
LIMIT_S = 10

producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "txn-confluent"})
started = time.monotonic()
try:
    producer.init_transactions(30)
    raise SystemExit("confluent-kafka: init_transactions() succeeded")
except KafkaException as e:
    took = time.monotonic() - started
    error = e.args[0]
    if took > LIMIT_S:
        raise SystemExit(f"confluent-kafka: failed only after {took:.1f} s: {error}")
    print(f"confluent-kafka: refused in {took:.1f} s (fatal={error.fatal()}, retriable={error.retriable()}): {error.str()}")

started = time.monotonic()
kp = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="txn-kafka-python", max_block_ms=30_000)
try:
    kp.init_transactions()
    raise SystemExit("kafka-python: init_transactions() succeeded")
except Exception as e:  # noqa: BLE001 - the client raises its own error types
    took = time.monotonic() - started
    if took > LIMIT_S:
        raise SystemExit(f"kafka-python: failed only after {took:.1f} s: {e!r}")
    print(f"kafka-python: refused in {took:.1f} s: {e!r}")
finally:
    kp.close(timeout=1)
