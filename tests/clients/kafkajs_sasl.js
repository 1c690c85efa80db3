// kafkajs against Weir over SASL_PLAINTEXT, or SASL_SSL when WEIR_TEST_CA
// names the CA's PEM file: PLAIN, SCRAM-SHA-256 and
// SCRAM-SHA-512 with the right password produce and consume; with a wrong
// one kafkajs reports the broker's SASL_AUTHENTICATION_FAILED. `reauth`
// produces and consumes across several session lifetimes
// (connections.max.reauth.ms, KIP-368: kafkajs re-authenticates before a
// request once the session is near its end).
// Usage: node kafkajs_sasl.js matrix BOOTSTRAP USER PASSWORD
//        node kafkajs_sasl.js reauth BOOTSTRAP USER PASSWORD SECONDS
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

const [mode, bootstrap, user, password, seconds] = process.argv.slice(2);
const N = 20;
const CA = process.env.WEIR_TEST_CA;

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

function client(mechanism, pw, extra = {}) {
  return new Kafka({
    clientId: 'kafkajs-sasl',
    brokers: [bootstrap],
    sasl: { mechanism, username: user, password: pw },
    ...(CA ? { ssl: { ca: [fs.readFileSync(CA, 'utf8')] } } : {}),
    logLevel: logLevel.NOTHING,
    retry: { retries: 2 },
    ...extra,
  });
}

async function roundTrip(kafka, topic, n) {
  const producer = kafka.producer();
  await producer.connect();
  for (let i = 0; i < n; i++) {
    await producer.send({ topic, messages: [{ key: String(i), value: 'v' + i }] });
  }
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: 'g-' + topic });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('consumed ' + got.length + ' of ' + n)), 60000);
    consumer.run({
      eachMessage: async ({ message }) => {
        got.push(message.value.toString());
        if (got.length === n) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  for (let i = 0; i < n; i++) assert(got[i] === 'v' + i, 'record ' + i + ': ' + got[i]);
  return got.length;
}

async function matrix() {
  for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512']) {
    const topic = 'kjs-sasl-' + mechanism + '-' + Date.now();
    const n = await roundTrip(client(mechanism, password), topic, N);
    console.log('kafkajs ' + mechanism + ': ' + n + ' records');
    const admin = client(mechanism, 'not-the-password').admin();
    try {
      await admin.connect();
      throw new Error('kafkajs connected with a wrong password');
    } catch (e) {
      assert(e.name === 'KafkaJSSASLAuthenticationError', e.name + ': ' + e.message);
      assert(/invalid credentials/.test(e.message), e.message);
      console.log('kafkajs ' + mechanism + ' wrong password: ' + e.message);
    }
  }
}

async function reauth() {
  let authentications = 0;
  let connections = 0;
  const kafka = client('scram-sha-512', password, {
    // Re-authenticate once less than this is left of the session.
    reauthenticationThreshold: 1000,
    logLevel: logLevel.DEBUG,
    logCreator: () => ({ log }) => {
      if (/authentication successful/.test(log.message)) authentications++;
      if (log.message === 'Connecting') connections++;
    },
  });
  const topic = 'kjs-reauth-' + Date.now();
  const producer = kafka.producer();
  await producer.connect();
  const end = Date.now() + Number(seconds) * 1000;
  let sent = 0;
  while (Date.now() < end) {
    await producer.send({ topic, messages: [{ value: String(sent) }] });
    sent++;
    await new Promise((r) => setTimeout(r, 50));
  }
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: 'g-' + topic });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let got = 0;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('consumed ' + got + ' of ' + sent)), 60000);
    consumer.run({
      eachMessage: async () => {
        got++;
        if (got === sent) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  // More authentications than connections: sessions renewed in place.
  console.log('kafkajs reauth: sent ' + sent + ', consumed ' + got + ', authentications ' + authentications + ', connections ' + connections);
}

(mode === 'matrix' ? matrix() : reauth()).then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
