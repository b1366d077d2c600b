#!/usr/bin/env node
// KafkaJS against a Sluice cluster (issue 17). Creates a topic with replication factor 3 and
// min.insync.replicas=2, waits until Metadata shows every partition led with all three
// replicas in sync, produces keyed records with acks=all (-1), consumes them all back in a
// consumer group (KafkaJS finds the coordinator, joins, syncs and fetches from each
// partition's leader), commits, and checks the committed offsets with the admin client.
// Exits non-zero with a clear message on the first failed check.
'use strict';

const { Kafka, logLevel } = require('kafkajs');

const PARTITIONS = 3;
const REPLICATION_FACTOR = 3;
const MESSAGES = 300;
const TIMEOUT_MS = 30000;

function check(condition, message) {
  console.log((condition ? 'ok   ' : 'FAIL ') + message);
  if (!condition) process.exit(1);
}

function parseArgs(argv) {
  const args = { brokers: 3 };
  for (let i = 2; i < argv.length; i++) {
    if (argv[i] === '--bootstrap') args.bootstrap = argv[++i];
    else if (argv[i] === '--brokers') args.brokers = Number(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!args.bootstrap) throw new Error('--bootstrap is required');
  return args;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForFullIsr(admin, topic) {
  const deadline = Date.now() + TIMEOUT_MS;
  let partitions = [];
  while (Date.now() < deadline) {
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    partitions = meta.topics[0].partitions;
    const full = partitions.length === PARTITIONS && partitions.every((p) =>
      p.leader >= 0 && p.replicas.length === REPLICATION_FACTOR &&
      [...p.isr].sort().join() === [...p.replicas].sort().join());
    if (full) return partitions;
    await sleep(200);
  }
  check(false, `${topic}: every partition led with ${REPLICATION_FACTOR} in-sync replicas ` +
    `within ${TIMEOUT_MS} ms (last seen ${JSON.stringify(partitions)})`);
  return partitions;
}

async function main() {
  const args = parseArgs(process.argv);
  const topic = `kjs-cluster-${Date.now() % 1000000}`;
  const kafka = new Kafka({
    clientId: 'sluice-cluster-kafkajs',
    brokers: args.bootstrap.split(','),
    logLevel: logLevel.NOTHING,
    requestTimeout: TIMEOUT_MS,
  });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{
      topic,
      numPartitions: PARTITIONS,
      replicationFactor: REPLICATION_FACTOR,
      configEntries: [{ name: 'min.insync.replicas', value: '2' }],
    }],
  });
  const cluster = await admin.describeCluster();
  check(cluster.brokers.length === args.brokers,
    `DescribeCluster lists ${cluster.brokers.length} brokers`);
  const partitions = await waitForFullIsr(admin, topic);
  const leaders = new Set(partitions.map((p) => p.leader));
  check(leaders.size > 1, `leaders ${[...leaders].sort()} on several brokers`);

  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  for (let start = 0; start < MESSAGES; start += 50) {
    const messages = [];
    for (let i = start; i < start + 50; i++) messages.push({ key: `k${i % 30}`, value: `v${i}` });
    const results = await producer.send({ topic, acks: -1, messages });
    check(results.every((r) => r.errorCode === 0),
      `acks=all send of records ${start}..${start + 49} acknowledged`);
  }
  await producer.disconnect();

  const group = `${topic}-group`;
  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = new Map();
  const lastOffset = new Map();
  let outOfOrder = 0;
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      const offset = Number(message.offset);
      const previous = lastOffset.has(partition) ? lastOffset.get(partition) : -1;
      if (offset !== previous + 1) outOfOrder++;
      lastOffset.set(partition, offset);
      seen.set(message.value.toString(), partition);
    },
  });
  const deadline = Date.now() + TIMEOUT_MS;
  while (seen.size < MESSAGES && Date.now() < deadline) await sleep(100);
  check(seen.size === MESSAGES, `consumed ${seen.size} of ${MESSAGES} distinct records`);
  check(outOfOrder === 0, 'every partition read gap-free from offset 0, in order');
  const commits = [];
  for (const [partition, last] of lastOffset) {
    commits.push({ topic, partition, offset: String(last + 1) });
  }
  await consumer.commitOffsets(commits);
  await consumer.disconnect();

  const fetched = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  const committed = {};
  for (const p of fetched[0].partitions) committed[p.partition] = Number(p.offset);
  const expected = {};
  for (const [partition, last] of lastOffset) expected[partition] = last + 1;
  const total = Object.values(committed).reduce((a, b) => a + Math.max(b, 0), 0);
  check(JSON.stringify(committed) === JSON.stringify(expected) && total === MESSAGES,
    `committed offsets ${JSON.stringify(committed)} are the log ends ${JSON.stringify(expected)}`);
  await admin.disconnect();
  console.log('all checks passed');
}

main().catch((e) => {
  console.error(`FAILED: ${e.stack || e}`);
  process.exit(1);
});
