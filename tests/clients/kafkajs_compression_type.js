#!/usr/bin/env node
// KafkaJS admin with the topic config `compression.type` (issue 15): createTopics with
// `compression.type=gzip` succeeds and describeConfigs reports it; an unknown codec is
// refused with INVALID_CONFIG; uncompressed messages produced to the gzip topic are stored
// recompressed and come back through a consumer group intact (KafkaJS decodes gzip itself).
//
// Usage: node kafkajs_compression_type.js --bootstrap HOST:PORT
'use strict';

const { Kafka, logLevel, CompressionTypes, ConfigResourceTypes } = require('kafkajs');

const MESSAGE_COUNT = 50;
const CONSUME_TIMEOUT_MS = 60000;

class CheckFailed extends Error {}

function check(condition, message) {
  console.log(`${condition ? 'ok  ' : 'FAIL'} ${message}`);
  if (!condition) throw new CheckFailed(message);
}

function parseArgs(argv) {
  const args = { bootstrap: null };
  for (let i = 2; i < argv.length; i++) {
    if (argv[i] === '--bootstrap') args.bootstrap = argv[++i];
    else throw new CheckFailed(`unknown argument ${argv[i]}`);
  }
  if (!args.bootstrap) throw new CheckFailed('usage: kafkajs_compression_type.js --bootstrap HOST:PORT');
  return args;
}

async function describedCompression(admin, topic) {
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['compression.type'] }],
  });
  const entry = described.resources[0].configEntries.find((e) => e.configName === 'compression.type');
  return entry && entry.configValue;
}

async function consumeAll(kafka, topic, count) {
  const consumer = kafka.consumer({ groupId: `${topic}-group` });
  const got = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  await consumer.run({
    eachMessage: async ({ message }) => {
      got.push(message);
      if (got.length >= count) done();
    },
  });
  const timer = setTimeout(done, CONSUME_TIMEOUT_MS);
  await finished;
  clearTimeout(timer);
  await consumer.disconnect();
  return got;
}

async function main() {
  const args = parseArgs(process.argv);
  const kafka = new Kafka({ clientId: 'sluice-kafkajs-compression', brokers: [args.bootstrap], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const topic = `kafkajs-ct-gzip-${Date.now()}`;

  const created = await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic, numPartitions: 1, configEntries: [{ name: 'compression.type', value: 'gzip' }] }],
  });
  check(created === true, 'createTopics with compression.type=gzip');
  check((await describedCompression(admin, topic)) === 'gzip', 'describeConfigs reports compression.type=gzip');

  let refused = null;
  try {
    await admin.createTopics({
      topics: [{ topic: `${topic}-bad`, numPartitions: 1, configEntries: [{ name: 'compression.type', value: 'brotli' }] }],
    });
  } catch (e) {
    refused = e;
  }
  const errorTypes = refused ? [refused.type, ...(refused.errors || []).map((e) => e.type)] : [];
  check(errorTypes.includes('INVALID_CONFIG'), `compression.type=brotli refused with INVALID_CONFIG (${errorTypes.join(',') || 'accepted'})`);

  const producer = kafka.producer();
  await producer.connect();
  const sent = [];
  for (let i = 0; i < MESSAGE_COUNT; i++) {
    sent.push({ key: `key-${i}`, value: `value-${i}-${'x'.repeat(200 + i)}`, headers: { seq: String(i) } });
  }
  await producer.send({ topic, compression: CompressionTypes.None, messages: sent });
  await producer.disconnect();

  const got = await consumeAll(kafka, topic, MESSAGE_COUNT);
  check(got.length === MESSAGE_COUNT, `consumed ${got.length} of ${MESSAGE_COUNT} messages`);
  const intact = got.every((m, i) =>
    m.key.toString() === sent[i].key &&
    m.value.toString() === sent[i].value &&
    m.headers.seq.toString() === sent[i].headers.seq &&
    m.offset === String(i));
  check(intact, 'every message back in order with key, value, header and offset');
  await admin.disconnect();
}

main().then(
  () => { console.log('kafkajs compression.type: all checks passed'); process.exit(0); },
  (e) => { console.log(`FAIL ${e instanceof CheckFailed ? e.message : e.stack || e}`); process.exit(1); },
);
