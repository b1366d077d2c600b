#!/usr/bin/env node
// KafkaJS over a SASL_PLAINTEXT listener with SCRAM-SHA-256 (issue 20): produce, consume
// through a consumer group, commit and read the committed offsets back; a wrong password is
// refused with an authentication error.
//
// Usage: node sasl_kafkajs.js --bootstrap HOST:PORT --user U --password P [--ssl-ca CA_FILE]
'use strict';

const { Kafka, logLevel } = require('kafkajs');

const MESSAGE_COUNT = 100;
const CONSUME_TIMEOUT_MS = 60000;

class CheckFailed extends Error {}

function check(condition, message) {
  console.log(`${condition ? 'ok  ' : 'FAIL'} ${message}`);
  if (!condition) throw new CheckFailed(message);
}

function parseArgs(argv) {
  const args = {};
  for (let i = 2; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!args.bootstrap || !args.user || !args.password) {
    throw new CheckFailed('usage: sasl_kafkajs.js --bootstrap HOST:PORT --user U --password P');
  }
  return args;
}

function client(args, password) {
  return new Kafka({
    clientId: 'sasl-kafkajs',
    brokers: [args.bootstrap],
    logLevel: logLevel.NOTHING,
    sasl: { mechanism: 'scram-sha-256', username: args.user, password },
    // A SASL_SSL listener: trust the CA its certificate chains to.
    ssl: args['ssl-ca'] ? { ca: [require('fs').readFileSync(args['ssl-ca'])] } : false,
    retry: { retries: 1 },
  });
}

async function main() {
  const args = parseArgs(process.argv);
  const kafka = client(args, args.password);
  const topic = `sasl-kafkajs-${Date.now()}`;
  const group = `${topic}-group`;
  const admin = kafka.admin();
  await admin.connect();
  check(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true }),
    `SCRAM-SHA-256: created ${topic}`);

  const producer = kafka.producer();
  await producer.connect();
  const messages = Array.from({ length: MESSAGE_COUNT }, (_, i) => ({ key: 'k', value: `v${i}` }));
  const sent = await producer.send({ topic, acks: -1, messages });
  check(sent[0].errorCode === 0, `produced ${MESSAGE_COUNT} messages`);
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: group });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const values = [];
  let lastOffset = null;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new CheckFailed('consume timed out')), CONSUME_TIMEOUT_MS);
    consumer.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        values.push(message.value.toString());
        lastOffset = message.offset;
        if (values.length === MESSAGE_COUNT) { clearTimeout(timer); resolve(); }
      },
    }).catch(reject);
  });
  check(values.join() === messages.map((m) => m.value).join(),
    `consumed all ${MESSAGE_COUNT} messages in order through group ${group}`);
  await consumer.commitOffsets([{ topic, partition: 0, offset: String(Number(lastOffset) + 1) }]);
  await consumer.disconnect();
  const committed = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  check(committed[0].partitions[0].offset === String(MESSAGE_COUNT),
    `committed offset read back: ${committed[0].partitions[0].offset}`);
  await admin.disconnect();

  const bad = client(args, 'wrong-password').admin();
  let refused = null;
  try { await bad.connect(); } catch (e) { refused = e; }
  check(refused !== null && /SASL|auth/i.test(`${refused.name} ${refused.message}`),
    `a wrong password is refused: ${refused && refused.name}`);
  console.log('all checks passed');
}

main().catch((e) => {
  console.log(`FAIL ${e.stack || e}`);
  process.exit(1);
});
