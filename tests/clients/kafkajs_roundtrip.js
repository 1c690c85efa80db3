// kafkajs against Weir: its admin client creates a 6-partition topic,
// describes, alters and grows it, lists offsets; its producer sends keyed
// records with headers and timestamps (acks=all, optionally idempotent,
// with a codec), which the Python consumers then check (see kafkajs.rs).
// Its consumer, which always belongs to a group, reads them back (or the
// same records produced by a Python client) and checks keys, values,
// headers, timestamps and per-partition order.
// Usage: node kafkajs_roundtrip.js produce BOOTSTRAP TOPIC CODEC IDEMPOTENT N
//        node kafkajs_roundtrip.js consume BOOTSTRAP TOPIC N
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs');
CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy');
CompressionCodecs[CompressionTypes.LZ4] = new (require('kafkajs-lz4'))().codec;

const mode = process.argv[2];
const [bootstrap, topic, codec, idempotent, n] =
  mode === 'produce' ? process.argv.slice(3) : [process.argv[3], process.argv[4], null, null, process.argv[5]];
const codecs = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy, lz4: CompressionTypes.LZ4 };
const BASE_TS = 1700000000000;

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function produce(kafka) {
  const admin = kafka.admin();
  await admin.connect();
  assert(await admin.createTopics({ topics: [{ topic, numPartitions: 4, configEntries: [{ name: 'retention.ms', value: '3600000' }] }] }), 'created');
  const described = await admin.describeConfigs({ resources: [{ type: 2, name: topic }], includeSynonyms: false });
  const retention = described.resources[0].configEntries.find((e) => e.configName === 'retention.ms');
  assert(retention && retention.configValue === '3600000', 'retention.ms ' + JSON.stringify(retention));
  await admin.alterConfigs({ validateOnly: false, resources: [{ type: 2, name: topic, configEntries: [{ name: 'retention.bytes', value: '1048576' }] }] });
  const after = await admin.describeConfigs({ resources: [{ type: 2, name: topic }], includeSynonyms: false });
  const bytes = after.resources[0].configEntries.find((e) => e.configName === 'retention.bytes');
  assert(bytes.configValue === '1048576', 'retention.bytes ' + JSON.stringify(bytes));
  await admin.createPartitions({ topicPartitions: [{ topic, count: 6 }] });
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  assert(meta.topics[0].partitions.length === 6, 'six partitions');

  const producer = kafka.producer({ idempotent: idempotent === 'true', maxInFlightRequests: idempotent === 'true' ? 1 : 5 });
  await producer.connect();
  const messages = [];
  for (let i = 0; i < Number(n); i++) {
    const key = `key-${i % 50}`;
    messages.push({ key, value: `value-${i}`, headers: { h: key }, timestamp: String(BASE_TS + i) });
  }
  for (let i = 0; i < messages.length; i += 200) {
    await producer.send({ topic, acks: -1, compression: codecs[codec], messages: messages.slice(i, i + 200) });
  }
  await producer.disconnect();

  const offsets = await admin.fetchTopicOffsets(topic);
  const total = offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
  assert(total === Number(n), `high watermarks add up to ${total}`);
  const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, BASE_TS + Number(n));
  assert(byTime.every((p) => Number(p.offset) === Number(offsets.find((o) => o.partition === p.partition).high)), 'no record is newer than the last');
  await admin.disconnect();
  console.log(`kafkajs: produced ${n} records`);
}

// Reads N records with a group consumer (its first member, so it owns every
// partition) from the earliest offset and checks them against what either
// round-trip script produces: key-(i % 50), value-i, header h = key,
// timestamp BASE_TS + i, in order within each partition. Then the group's
// committed offsets are the high watermarks.
async function consume(kafka) {
  const groupId = `roundtrip-${topic}`;
  const consumer = kafka.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const last = {};
  let read = 0;
  let failure = null;
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      try {
        const i = Number(message.value.toString().split('-')[1]);
        const key = `key-${i % 50}`;
        assert(message.value.toString() === `value-${i}`, `value ${message.value}`);
        assert(message.key.toString() === key, `${message.value} came with key ${message.key}`);
        assert(Number(message.timestamp) === BASE_TS + i, `${message.value} came with timestamp ${message.timestamp}`);
        const headers = Object.entries(message.headers).map(([k, v]) => [k, v.toString()]);
        assert(JSON.stringify(headers) === JSON.stringify([['h', key]]), `${message.value} headers ${JSON.stringify(headers)}`);
        const [lastOffset, lastI] = last[partition] || [-1, -1];
        assert(Number(message.offset) > lastOffset && i > lastI, `order broken on partition ${partition} at ${message.value}`);
        last[partition] = [Number(message.offset), i];
        read++;
      } catch (e) {
        failure = failure || e;
      }
    },
  });
  const deadline = Date.now() + 60000;
  while (read < Number(n) && !failure) {
    assert(Date.now() < deadline, `kafkajs consumer read ${read} of ${n} records`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await consumer.disconnect(); // commits what it read, then leaves the group
  if (failure) throw failure;
  assert(read === Number(n), `kafkajs consumer read ${read} of ${n} records`);
  const admin = kafka.admin();
  await admin.connect();
  const [{ partitions: committed }] = await admin.fetchOffsets({ groupId, topics: [topic] });
  const highs = await admin.fetchTopicOffsets(topic);
  for (const { partition, high } of highs) {
    const mine = committed.find((c) => c.partition === partition);
    assert(mine && mine.offset === high, `partition ${partition} committed ${JSON.stringify(mine)}, high watermark ${high}`);
  }
  await admin.disconnect();
  console.log(`kafkajs consumer: ${read} records on ${Object.keys(last).length} partitions`);
}

(async () => {
  setTimeout(() => {
    console.error('kafkajs round trip did not finish within 120 s');
    process.exit(3);
  }, 120000).unref();
  const kafka = new Kafka({ clientId: 'weir-test', brokers: [bootstrap], logLevel: logLevel.ERROR, retry: { retries: 3 } });
  if (mode === 'produce') await produce(kafka);
  await consume(kafka);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
