// kafkajs against Weir with SASL OAUTHBEARER: with a valid JWT (minted by
// the calling test) it produces and consumes; with an expired one it
// reports the broker's authentication failure. `reauth` produces for
// SECONDS on a server with short sessions (connections.max.reauth.ms):
// kafkajs re-authenticates on the same connection, asking its provider
// for a token each time, and is handed a different one (same subject)
// each time.
// Usage: node kafkajs_oauthbearer.js matrix BOOTSTRAP TOKEN EXPIRED_TOKEN
//        node kafkajs_oauthbearer.js reauth BOOTSTRAP TOKEN,TOKEN,... SECONDS
const { Kafka, logLevel } = require('kafkajs');

const [mode, bootstrap, token, expired] = process.argv.slice(2);
const N = 20;

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

function client(value) {
  return new Kafka({
    clientId: 'kafkajs-oauthbearer',
    brokers: [bootstrap],
    sasl: { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value }) },
    logLevel: logLevel.NOTHING,
    retry: { retries: 2 },
  });
}

async function roundTrip() {
  const kafka = client(token);
  const topic = 'kjs-oauth-' + Date.now();
  const producer = kafka.producer();
  await producer.connect();
  for (let i = 0; i < N; i++) {
    await producer.send({ topic, messages: [{ key: String(i), value: 'v' + i }] });
  }
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: 'g-' + topic });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('consumed ' + got.length + ' of ' + N)), 60000);
    consumer.run({
      eachMessage: async ({ message }) => {
        got.push(message.value.toString());
        if (got.length === N) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  for (let i = 0; i < N; i++) assert(got[i] === 'v' + i, 'record ' + i + ': ' + got[i]);
  console.log('kafkajs OAUTHBEARER: ' + got.length + ' records');
}

async function refused() {
  const admin = client(expired).admin();
  try {
    await admin.connect();
    throw new Error('kafkajs connected with an expired token');
  } catch (e) {
    assert(e.name === 'KafkaJSSASLAuthenticationError', e.name + ': ' + e.message);
    console.log('kafkajs expired token refused: ' + e.message);
  }
}

async function reauth() {
  const tokens = token.split(',');
  const seconds = Number(expired);
  let handedOut = 0;
  let authentications = 0;
  let connections = 0;
  const kafka = new Kafka({
    clientId: 'kafkajs-oauthbearer',
    brokers: [bootstrap],
    sasl: {
      mechanism: 'oauthbearer',
      oauthBearerProvider: async () => ({ value: tokens[handedOut++ % tokens.length] }),
    },
    // Re-authenticate once less than this is left of the session.
    reauthenticationThreshold: 1000,
    retry: { retries: 2 },
    logLevel: logLevel.DEBUG,
    logCreator: () => ({ log }) => {
      if (/OAUTHBEARER authentication successful/.test(log.message)) authentications++;
      if (log.message === 'Connecting') connections++;
    },
  });
  const topic = 'kjs-oauth-reauth-' + Date.now();
  const producer = kafka.producer();
  await producer.connect();
  const end = Date.now() + seconds * 1000;
  let sent = 0;
  while (Date.now() < end) {
    await producer.send({ topic, messages: [{ value: String(sent) }] });
    sent++;
    await new Promise((r) => setTimeout(r, 50));
  }
  await producer.disconnect();
  console.log('kafkajs reauth: sent ' + sent + ', tokens handed out ' + handedOut
    + ', authentications ' + authentications + ', connections ' + connections);
}

(mode === 'matrix' ? roundTrip().then(refused) : reauth())
  .then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
