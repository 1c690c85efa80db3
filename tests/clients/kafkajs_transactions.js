// kafkajs's transactional producer against Weir: it commits a
// transaction, aborts one and commits another (with its consumer offsets
// in it, sendOffsets); its read_committed consumer (readUncommitted:
// false) then sees the committed values only. Prints one line per
// finding; kafkajs_transactions in transactions.rs checks them.
// Usage: node kafkajs_transactions.js BOOTSTRAP TOPIC
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic] = process.argv.slice(2);

async function readAll(kafka, groupId, expected) {
  const consumer = kafka.consumer({ groupId, readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const values = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, 15000);
    consumer
      .run({
        eachMessage: async ({ message }) => {
          values.push(message.value.toString());
          if (values.length >= expected) {
            clearTimeout(timer);
            // Anything more arriving shortly would show a duplicate.
            setTimeout(resolve, 1000);
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  return values.sort();
}

async function main() {
  const kafka = new Kafka({ clientId: 'kafkajs-txn', brokers: [bootstrap], logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ transactionalId: 'tx-kafkajs', idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();

  let txn = await producer.transaction();
  await txn.send({ topic, messages: [{ value: 'j1' }, { value: 'j2' }] });
  await txn.commit();
  console.log('kafkajs t1: committed');

  txn = await producer.transaction();
  await txn.send({ topic, messages: [{ value: 'jx' }] });
  await txn.abort();
  console.log('kafkajs t2: aborted');

  txn = await producer.transaction();
  await txn.send({ topic, messages: [{ value: 'j3' }] });
  await txn.sendOffsets({ consumerGroupId: 'kafkajs-txn-group', topics: [{ topic, partitions: [{ partition: 0, offset: '1' }] }] });
  await txn.commit();
  console.log('kafkajs t3: committed with offsets');
  await producer.disconnect();

  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchOffsets({ groupId: 'kafkajs-txn-group', topics: [topic] });
  console.log('kafkajs group offset:', offsets[0].partitions.find((p) => p.partition === 0).offset);
  await admin.disconnect();

  const values = await readAll(kafka, 'kafkajs-reader', 3);
  console.log('kafkajs read_committed: ' + values.join(','));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
