// kafkajs over an SSL listener: Metadata through the SSL port names that
// port, then a producer and a consumer (in a group) round-trip records,
// trusting the test CA and, when given, presenting a client certificate.
// Run by crates/weir-kafka/tests/tls_clients.rs:
// node kafkajs_tls.js BOOTSTRAP TOPIC N CA_PEM [CLIENT_PEM CLIENT_KEY]
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, n, ca, cert, key] = process.argv.slice(2);
const port = Number(bootstrap.split(':').pop());
const ssl = { ca: [fs.readFileSync(ca)] };
if (cert) {
  ssl.cert = fs.readFileSync(cert);
  ssl.key = fs.readFileSync(key);
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function main() {
  const kafka = new Kafka({ clientId: 'weir-tls', brokers: [bootstrap], ssl, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const cluster = await admin.describeCluster();
  assert(cluster.brokers.length === 1 && cluster.brokers[0].port === port, 'brokers ' + JSON.stringify(cluster.brokers));
  console.log(`kafkajs cluster: broker port ${port}`);
  await admin.disconnect();

  const producer = kafka.producer();
  await producer.connect();
  const values = [];
  for (let i = 0; i < Number(n); i++) values.push(`kafkajs-${i}`);
  await producer.send({ topic, acks: -1, messages: values.map((value) => ({ value })) });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: `tls-${Date.now()}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read ${got.length} of ${values.length}`)), 60000);
    consumer.run({
      eachMessage: async ({ message }) => {
        const v = message.value.toString();
        if (v.startsWith('kafkajs-')) got.push(v);
        if (got.length === values.length) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  assert(JSON.stringify(got) === JSON.stringify(values), 'read back something else');
  console.log(`kafkajs consumer: ${got.length} records`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
