// Consumer groups through kafkajs, for the group tests: `member` is one
// group member speaking the line protocol of python_groups.py (which starts
// it, and kills it); `admin` lists, describes, sets, resets and deletes a
// group's offsets through kafkajs's admin client, refused while the group
// has a member. Run by crates/weir-kafka/tests/groups_kafkajs.rs:
//   node kafkajs_groups.js member BOOTSTRAP GROUP TOPIC COMMIT DELAY_MS
//   node kafkajs_groups.js admin BOOTSTRAP
const { Kafka, logLevel, AssignerProtocol } = require('kafkajs');

// The timings python_groups.py gives its members.
const SESSION_MS = 6000;
const HEARTBEAT_MS = 500;
const MAX_POLL_MS = 10000;
const MEMBER_LIFETIME_MS = 100000;
const BATCH_RECORDS_MAX = 20;

const now = () => ((performance.timeOrigin + performance.now()) / 1000).toFixed(6);
// stdout is a pipe, written synchronously on Linux: a line printed before a
// kill -9 is not lost.
const emit = (kind, ...fields) => process.stdout.write([kind, now(), ...fields].join(' ') + '\n');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const partitionsField = (ps) => [...ps].sort((a, b) => a - b).join(',') || '-';

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

function client(bootstrap) {
  const logCreator = () => ({ namespace, log }) =>
    process.stderr.write(`kafkajs ${namespace}: ${log.message} ${log.error || ''}\n`);
  return new Kafka({
    clientId: 'weir-groups',
    brokers: [bootstrap],
    logLevel: logLevel.ERROR,
    logCreator,
    retry: { initialRetryTime: 50, retries: 8 },
  });
}

function consumerOf(kafka, groupId) {
  // maxWaitTimeInMs: kafkajs heartbeats between fetches, so a long poll
  // would delay noticing a rebalance.
  return kafka.consumer({
    groupId,
    sessionTimeout: SESSION_MS,
    heartbeatInterval: HEARTBEAT_MS,
    rebalanceTimeout: MAX_POLL_MS,
    maxWaitTimeInMs: 100,
  });
}

async function member(bootstrap, group, topic, commit, delayMs) {
  setTimeout(() => {
    emit('E', 'member-lifetime-exceeded');
    process.exit(3);
  }, MEMBER_LIFETIME_MS);
  const consumer = consumerOf(client(bootstrap), group);
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    // kafkajs reads the committed offsets again at every join, even of the
    // partitions it keeps: each join starts a new assignment.
    emit('A', '-');
    emit('A', partitionsField(payload.memberAssignment[topic] || []));
  });
  consumer.on(consumer.events.COMMIT_OFFSETS, ({ payload }) => {
    for (const t of payload.topics) for (const p of t.partitions) emit('C', p.partition, p.offset);
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => emit('W', String(payload.error.name)));
  process.stdin.on('end', async () => {
    await consumer.disconnect();
    emit('X');
    process.exit(0);
  });
  process.stdin.resume();

  const commitSync = async (partition, offset) => {
    try {
      await consumer.commitOffsets([{ topic, partition, offset }]);
      return true;
    } catch (e) {
      emit('F', e.type || e.name);
      return false;
    }
  };
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    autoCommit: commit === 'auto',
    autoCommitInterval: 200,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale }) => {
      const p = batch.partition;
      for (let i = 0; i < batch.messages.length; i += BATCH_RECORDS_MAX) {
        if (!isRunning() || isStale()) return;
        const chunk = batch.messages.slice(i, i + BATCH_RECORDS_MAX);
        const end = String(Number(chunk[chunk.length - 1].offset) + 1);
        // Not committed, so not processed (and not resolved: read again).
        if (commit === 'before' && !(await commitSync(p, end))) return;
        for (const m of chunk) {
          emit('R', p, m.offset, m.value.toString());
          if (delayMs) await sleep(delayMs);
          // Resolving moves kafkajs's fetch position; it commits it only
          // under autoCommit.
          resolveOffset(m.offset);
        }
        if (commit === 'after') await commitSync(p, end);
        if (commit === 'auto') await commitOffsetsIfNecessary();
        await heartbeat();
      }
    },
  });
}

async function until(what, cond, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    assert(Date.now() < deadline, `waited ${timeoutMs} ms for ${what}`);
    await sleep(20);
  }
}

async function refusal(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  return null;
}

async function adminScenario(bootstrap) {
  const topic = 'admin-kafkajs';
  const groupId = 'admin-kafkajs';
  const kafka = client(bootstrap);
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
  const producer = kafka.producer();
  await producer.connect();
  const messages = [...Array(300).keys()].map((i) => ({ partition: i % 3, key: `k${i}`, value: `v-${i}` }));
  await producer.send({ topic, acks: -1, messages });
  await producer.disconnect();

  const committed = async () => {
    const [{ partitions }] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return Object.fromEntries(partitions.map((p) => [p.partition, Number(p.offset)]));
  };
  // Lag as Kafka's tools compute it: high watermark less committed offset.
  const lag = async () => {
    const mine = await committed();
    const highs = await admin.fetchTopicOffsets(topic);
    return Object.fromEntries(highs.map((p) => [p.partition, Number(p.high) - mine[p.partition]]));
  };
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  const describe = async () => (await admin.describeGroups([groupId])).groups[0];
  const readFrom = async (fromBeginning) => {
    // A member that counts what it reads and notes where each partition started.
    const first = {};
    let read = 0;
    const m = consumerOf(kafka, groupId);
    await m.connect();
    await m.subscribe({ topics: [topic], fromBeginning });
    await m.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (!(partition in first)) first[partition] = Number(message.offset);
        read++;
      },
    });
    return { m, first, read: () => read };
  };

  // A live member that read everything and committed 40, 50 and 60.
  const live = await readFrom(true);
  await until('the member read 300 records', () => live.read() >= 300, 30000);
  await live.m.commitOffsets([0, 1, 2].map((p) => ({ topic, partition: p, offset: String(40 + 10 * p) })));

  const listed = await admin.listGroups();
  assert(listed.groups.some((g) => g.groupId === groupId && g.protocolType === 'consumer'), JSON.stringify(listed));
  let described = await describe();
  assert(described.state === 'Stable' && described.protocol === 'RoundRobinAssigner', JSON.stringify(described));
  assert(described.members.length === 1, 'one member');
  const { assignment } = AssignerProtocol.MemberAssignment.decode(described.members[0].memberAssignment);
  assert(same(assignment[topic].sort(), [0, 1, 2]), JSON.stringify(assignment));
  assert(same(await committed(), { 0: 40, 1: 50, 2: 60 }), JSON.stringify(await committed()));
  assert(same(await lag(), { 0: 60, 1: 50, 2: 40 }), JSON.stringify(await lag()));
  // kafkajs refuses to set offsets of a group with members itself (it
  // describes the group first); the broker refuses to delete it.
  const partitions = [0, 1, 2].map((partition) => ({ partition, offset: String(10 * (2 - partition)) }));
  let e = await refusal(admin.setOffsets({ groupId, topic, partitions }));
  assert(e && /no running instances/.test(e.message), `setOffsets on a live group: ${e}`);
  e = await refusal(admin.resetOffsets({ groupId, topic, earliest: true }));
  assert(e && /no running instances/.test(e.message), `resetOffsets on a live group: ${e}`);
  e = await refusal(admin.deleteGroups([groupId]));
  assert(e && e.groups && e.groups[0].error.type === 'NON_EMPTY_GROUP', `deleteGroups on a live group: ${e}`);
  assert(same(await committed(), { 0: 40, 1: 50, 2: 60 }), 'a refused change changed nothing');
  await live.m.disconnect();

  described = await describe();
  assert(described.state === 'Empty' && described.members.length === 0, JSON.stringify(described));
  await admin.setOffsets({ groupId, topic, partitions });
  assert(same(await committed(), { 0: 20, 1: 10, 2: 0 }), JSON.stringify(await committed()));
  assert(same(await lag(), { 0: 80, 1: 90, 2: 100 }), JSON.stringify(await lag()));
  const next = await readFrom(false);
  await until('the next member read 270 records', () => next.read() >= 270, 30000);
  assert(same(next.first, { 0: 20, 1: 10, 2: 0 }), `the next member started at ${JSON.stringify(next.first)}`);
  await next.m.disconnect();

  // resetOffsets commits kafkajs's "earliest" (-2), which Kafka stores as
  // given; fetchOffsets with resolveOffsets turns it into the log start and
  // commits that.
  await admin.resetOffsets({ groupId, topic, earliest: true });
  const [{ partitions: resolved }] = await admin.fetchOffsets({ groupId, topics: [topic], resolveOffsets: true });
  assert(resolved.every((p) => p.offset === '0'), JSON.stringify(resolved));
  assert(same(await committed(), { 0: 0, 1: 0, 2: 0 }), JSON.stringify(await committed()));

  await admin.deleteGroups([groupId]);
  assert(!(await admin.listGroups()).groups.some((g) => g.groupId === groupId), 'deleted group listed');
  assert(same(await committed(), { 0: -1, 1: -1, 2: -1 }), JSON.stringify(await committed()));
  assert((await describe()).state === 'Dead', 'a deleted group is Dead');
  await admin.disconnect();
  console.log(
    'OK admin kafkajs: list, describe, offsets and lag of a live group; setOffsets and resetOffsets refused ' +
      'by kafkajs, deleteGroups with NON_EMPTY_GROUP; all accepted once empty'
  );
}

const [command, ...args] = process.argv.slice(2);
const commands = {
  member: ([bootstrap, group, topic, commit, delayMs]) => member(bootstrap, group, topic, commit, Number(delayMs)),
  admin: ([bootstrap]) => adminScenario(bootstrap),
};
if (command === 'admin') {
  setTimeout(() => {
    console.error('admin scenario did not finish within 120 s');
    process.exit(3);
  }, 120000).unref();
}
commands[command](args)
  .then(() => command === 'admin' && process.exit(0))
  .catch((e) => {
    if (command === 'member') emit('E', String(e.name || e).replace(/\s+/g, '-'));
    console.error(e);
    process.exit(1);
  });
