#!/usr/bin/env node
// Transactions with KafkaJS: consume-transform-produce with `producer.transaction()` and
// `sendOffsets`, plus an aborted transaction.
//
// A plain producer writes N records to an input topic. A consumer group reads them
// (read_committed) and, per batch, a transactional producer writes each record transformed
// to an output topic and commits the group's offsets in the same transaction. One extra
// transaction writes junk to every output partition and aborts. Then: a read_committed
// reader of the output sees each transformed record exactly once and no junk, and the
// group's committed offsets are the input's end offsets.
//
// Usage: node kafkajs_transactions.js --bootstrap HOST:PORT
'use strict';

const { Kafka, logLevel } = require('kafkajs');

const PARTITIONS = 3;
const RECORDS = 60;
const TIMEOUT_MS = 60000;

class CheckFailed extends Error {}

function check(condition, message) {
  console.log(`${condition ? 'ok  ' : 'FAIL'} ${message}`);
  if (!condition) throw new CheckFailed(message);
}

function bootstrapArg() {
  const i = process.argv.indexOf('--bootstrap');
  if (i < 0 || !process.argv[i + 1]) throw new Error('usage: --bootstrap HOST:PORT');
  return process.argv[i + 1];
}

function unique(prefix) {
  return `${prefix}-${Math.random().toString(16).slice(2, 12)}`;
}

async function readAll(kafka, topic, expected) {
  const consumer = kafka.consumer({ groupId: unique('reader'), readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = [];
  let resolveDone;
  const done = new Promise((resolve) => { resolveDone = resolve; });
  await consumer.run({
    eachMessage: async ({ message }) => {
      seen.push(message.value.toString());
      if (seen.length >= expected) resolveDone();
    },
  });
  const timer = setTimeout(resolveDone, TIMEOUT_MS);
  await done;
  // Linger a little: anything beyond `expected` (junk, duplicates) shows up too.
  await new Promise((r) => setTimeout(r, 2000));
  clearTimeout(timer);
  await consumer.disconnect();
  return seen;
}

async function main() {
  const kafka = new Kafka({
    clientId: 'sluice-txn-test',
    brokers: [bootstrapArg()],
    logLevel: logLevel.NOTHING,
  });
  const input = unique('ctp-in');
  const output = unique('ctp-out');
  const group = unique('ctp-group');
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [input, output].map((topic) => ({ topic, numPartitions: PARTITIONS })),
    waitForLeaders: true,
  });

  const plain = kafka.producer();
  await plain.connect();
  const inputs = [];
  for (let i = 0; i < RECORDS; i += 1) inputs.push({ partition: i % PARTITIONS, value: `in-${i}` });
  await plain.send({ topic: input, messages: inputs });
  await plain.disconnect();

  const producer = kafka.producer({
    transactionalId: unique('ctp-tx'),
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();

  // One aborted transaction across every output partition first.
  const junk = await producer.transaction();
  await junk.send({
    topic: output,
    messages: [0, 1, 2].map((p) => ({ partition: p, value: `junk-${p}` })),
  });
  await junk.abort();
  check(true, 'an aborted transaction over 3 partitions');

  const consumer = kafka.consumer({ groupId: group, readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topic: input, fromBeginning: true });
  let transformed = 0;
  let resolveDone;
  const done = new Promise((resolve) => { resolveDone = resolve; });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const txn = await producer.transaction();
      try {
        await txn.send({
          topic: output,
          messages: batch.messages.map((m) => ({
            partition: batch.partition,
            value: `out-${m.value.toString().slice(3)}`,
          })),
        });
        const last = batch.messages[batch.messages.length - 1];
        await txn.sendOffsets({
          consumerGroupId: group,
          topics: [{
            topic: batch.topic,
            partitions: [{ partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }],
          }],
        });
        await txn.commit();
      } catch (e) {
        await txn.abort();
        throw e;
      }
      transformed += batch.messages.length;
      if (transformed >= RECORDS) resolveDone();
    },
  });
  const timer = setTimeout(resolveDone, TIMEOUT_MS);
  await done;
  clearTimeout(timer);
  await consumer.disconnect();
  check(transformed === RECORDS, `transformed ${transformed} of ${RECORDS} records in transactions`);

  const out = await readAll(kafka, output, RECORDS);
  const want = inputs.map((m) => `out-${m.value.slice(3)}`).sort();
  check(out.filter((v) => v.startsWith('junk')).length === 0, 'read_committed never sees the aborted records');
  check(JSON.stringify([...out].sort()) === JSON.stringify(want),
    `read_committed sees each of the ${RECORDS} transformed records exactly once (saw ${out.length})`);

  const committed = await admin.fetchOffsets({ groupId: group, topics: [input] });
  const ends = await admin.fetchTopicOffsets(input);
  const byPartition = (list) => list.map((p) => `${p.partition}:${p.offset}`).sort().join(',');
  check(byPartition(committed[0].partitions) === byPartition(ends.map((e) => ({ partition: e.partition, offset: e.high }))),
    `the group's offsets committed in the transactions are the input's end offsets (${byPartition(committed[0].partitions)})`);

  await producer.disconnect();
  await admin.disconnect();
}

main()
  .then(() => console.log('all checks passed'))
  .catch((e) => {
    console.error(`FAILED: ${e instanceof CheckFailed ? '' : `${e.name}: `}${e.message}`);
    process.exit(1);
  });
