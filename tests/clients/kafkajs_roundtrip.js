// kafkajs against Weir: its admin client creates a 6-partition topic,
// describes, alters and grows it, lists offsets; its producer sends keyed
// records with headers and timestamps (acks=all, optionally idempotent,
// with a codec); the Python consumers then check them (see python.rs).
// Usage: node kafkajs_roundtrip.js BOOTSTRAP TOPIC CODEC IDEMPOTENT N
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs');
CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy');
CompressionCodecs[CompressionTypes.LZ4] = new (require('kafkajs-lz4'))().codec;

const [bootstrap, topic, codec, idempotent, n] = process.argv.slice(2);
const codecs = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy, lz4: CompressionTypes.LZ4 };
const BASE_TS = 1700000000000;

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

(async () => {
  const kafka = new Kafka({ clientId: 'weir-test', brokers: [bootstrap], logLevel: logLevel.ERROR, retry: { retries: 3 } });
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
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
