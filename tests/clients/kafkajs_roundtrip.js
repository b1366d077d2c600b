#!/usr/bin/env node
// Round trip through the broker with KafkaJS (pure JavaScript client).
//
// For each codec KafkaJS can use here (none, gzip built in; snappy via kafkajs-snappy; lz4
// via a small codec over the pure-JS lz4js) and once with `idempotent: true`: create a
// 3-partition topic with the admin API, produce keyed messages with headers, consume them
// all back through a consumer group (KafkaJS has no manual assignment) and check counts,
// per-partition order and offsets, key placement, content and topic offsets.
// zstd is NOT tested: the only KafkaJS zstd codec (@kafkajs/zstd) needs a native build.
//
// Usage: node kafkajs_roundtrip.js --bootstrap HOST:PORT [--skip-watermark-check]
'use strict';

const { Kafka, logLevel, CompressionTypes, CompressionCodecs, Partitioners } = require('kafkajs');
const SnappyCodec = require('kafkajs-snappy');
const lz4js = require('lz4js');

const PARTITION_COUNT = 3;
const MESSAGE_COUNT = 240;
const MESSAGES_PER_SEND = 30;
const KEY_COUNT = 12;
const CONSUME_TIMEOUT_MS = 60000;
const BINARY_HEADER = Buffer.from([0, 1, 127, 128, 255]);

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;
// Kafka's LZ4 is the LZ4 frame format, which lz4js reads and writes.
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  async compress(encoder) {
    return Buffer.from(lz4js.compress(encoder.buffer));
  },
  async decompress(buffer) {
    return Buffer.from(lz4js.decompress(buffer));
  },
});

class CheckFailed extends Error {}

function check(condition, message) {
  console.log(`${condition ? 'ok  ' : 'FAIL'} ${message}`);
  if (!condition) throw new CheckFailed(message);
}

function parseArgs(argv) {
  const args = { bootstrap: null, skipWatermarks: false };
  for (let i = 2; i < argv.length; i++) {
    if (argv[i] === '--bootstrap') args.bootstrap = argv[++i];
    // Only for trying this script on brokers with a known ListOffsets bug (tansu 0.6).
    else if (argv[i] === '--skip-watermark-check') args.skipWatermarks = true;
    else throw new CheckFailed(`unknown argument ${argv[i]}`);
  }
  if (!args.bootstrap) throw new CheckFailed('usage: kafkajs_roundtrip.js --bootstrap HOST:PORT');
  return args;
}

function expectedMessages(label) {
  const out = [];
  for (let i = 0; i < MESSAGE_COUNT; i++) {
    const pad = Buffer.alloc((i * 37) % 1300, i % 251);
    out.push({
      key: Buffer.from(`key-${i % KEY_COUNT}`),
      value: Buffer.concat([Buffer.from(`${label}-${i}:`), pad]),
      headers: { seq: String(i), bin: BINARY_HEADER, dup: ['first', 'second'], empty: '' },
    });
  }
  return out;
}

function headerBuffers(value) {
  return (Array.isArray(value) ? value : [value]).map((v) => Buffer.from(v ?? ''));
}

function headersEqual(got, want) {
  const names = Object.keys(want);
  if (Object.keys(got).sort().join() !== names.slice().sort().join()) return false;
  return names.every((name) => {
    const a = headerBuffers(got[name]);
    const b = headerBuffers(want[name]);
    return a.length === b.length && a.every((buf, i) => buf.equals(b[i]));
  });
}

async function createTopic(admin, topic) {
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: PARTITION_COUNT, replicationFactor: 1 }],
    waitForLeaders: true,
    timeout: 30000,
  });
  check(created === true, `${topic}: CreateTopics reports the topic as created`);
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  const partitions = meta.topics[0].partitions;
  check(
    partitions.length === PARTITION_COUNT && partitions.every((p) => p.leader >= 0),
    `${topic}: metadata shows ${partitions.length} partitions with leaders`,
  );
}

async function produce(kafka, topic, messages, compression, idempotent) {
  const producer = kafka.producer(
    idempotent
      ? { idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner }
      : { allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner },
  );
  await producer.connect();
  // seq -> [partition, offset] from the acknowledgements.
  const delivered = new Map();
  try {
    for (let start = 0; start < messages.length; start += MESSAGES_PER_SEND) {
      const chunk = messages.slice(start, start + MESSAGES_PER_SEND);
      const results = await producer.send({ topic, compression, acks: -1, messages: chunk });
      const byPartition = new Map(results.map((r) => [r.partition, r]));
      for (const r of results) {
        check(r.errorCode === 0, `${topic}: send acknowledged partition ${r.partition} (error ${r.errorCode})`);
      }
      // Within one send KafkaJS keeps message order per partition, so the k-th message that
      // went to partition p got offset baseOffset + k.
      const countInPartition = new Map();
      for (let j = 0; j < chunk.length; j++) {
        const seq = start + j;
        const partition = partitionOf(chunk[j].key);
        const k = countInPartition.get(partition) ?? 0;
        countInPartition.set(partition, k + 1);
        const ack = byPartition.get(partition);
        if (ack === undefined) throw new CheckFailed(`${topic}: no acknowledgement for partition ${partition}`);
        delivered.set(seq, [partition, Number(ack.baseOffset) + k]);
      }
    }
  } finally {
    await producer.disconnect();
  }
  return delivered;
}

// The producer's own partitioner, asked directly, so acknowledged base offsets can be mapped
// back to individual messages.
const partitioner = Partitioners.DefaultPartitioner();
const PARTITION_METADATA = Array.from({ length: PARTITION_COUNT }, (_, i) => ({
  partitionId: i,
  leader: 0,
}));

function partitionOf(key) {
  return partitioner({ topic: 'any', partitionMetadata: PARTITION_METADATA, message: { key } });
}

async function consumeAll(kafka, topic, expectedCount) {
  const consumer = kafka.consumer({
    groupId: `${topic}-reader`,
    sessionTimeout: 10000,
    heartbeatInterval: 1000,
    allowAutoTopicCreation: false,
  });
  const consumed = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    let resolveDone;
    const done = new Promise((resolve) => (resolveDone = resolve));
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        consumed.push({
          partition,
          offset: Number(message.offset),
          key: message.key,
          value: message.value,
          headers: message.headers,
        });
        if (consumed.length >= expectedCount) resolveDone();
      },
    });
    const timer = setTimeout(resolveDone, CONSUME_TIMEOUT_MS);
    await done;
    clearTimeout(timer);
    // Anything beyond the expected count would be a duplicate; give it a moment to show.
    await new Promise((resolve) => setTimeout(resolve, 1000));
  } finally {
    await consumer.disconnect();
  }
  return consumed;
}

function verify(label, expected, consumed, delivered) {
  check(consumed.length === expected.length, `${label}: consumed ${consumed.length} records, produced ${expected.length}`);
  const seqs = consumed.map((c) => Number(Buffer.from(headerBuffers(c.headers.seq)[0]).toString()));
  check(new Set(seqs).size === seqs.length, `${label}: no duplicate records`);
  const intact = consumed.every((c, idx) => {
    const want = expected[seqs[idx]];
    return (
      want !== undefined &&
      c.key.equals(want.key) &&
      c.value.equals(want.value) &&
      headersEqual(c.headers, want.headers)
    );
  });
  check(intact, `${label}: keys, values and headers intact`);
  const keyPartitions = new Map();
  const byPartition = new Map();
  consumed.forEach((c, idx) => {
    const key = c.key.toString();
    if (!keyPartitions.has(key)) keyPartitions.set(key, new Set());
    keyPartitions.get(key).add(c.partition);
    if (!byPartition.has(c.partition)) byPartition.set(c.partition, []);
    byPartition.get(c.partition).push([c.offset, seqs[idx]]);
  });
  check(
    [...keyPartitions.values()].every((s) => s.size === 1),
    `${label}: each key always lands in one partition`,
  );
  check(byPartition.size > 1, `${label}: keys spread over partitions ${[...byPartition.keys()].sort()}`);
  for (const [partition, rows] of [...byPartition.entries()].sort((a, b) => a[0] - b[0])) {
    // Messages of one partition arrive in order; check offsets and produce order.
    const offsets = rows.map((r) => r[0]);
    check(
      offsets.every((o, i) => o === i),
      `${label}: partition ${partition} offsets are 0..${rows.length - 1} with no gap`,
    );
    check(
      rows.every((r, i) => i === 0 || r[1] > rows[i - 1][1]),
      `${label}: partition ${partition} keeps produce order (${rows.length} records)`,
    );
  }
  const mismatched = consumed.filter((c, idx) => {
    const d = delivered.get(seqs[idx]);
    return d === undefined || d[0] !== c.partition || d[1] !== c.offset;
  });
  check(
    mismatched.length === 0,
    `${label}: acknowledged partition/offset equals consumed partition/offset (${mismatched.length} differ)`,
  );
  return byPartition;
}

async function roundtrip(kafka, admin, args, label, compression, idempotent) {
  const topic = `kjs-${label}-${Math.random().toString(16).slice(2, 12)}`;
  console.log(`--- kafkajs ${label}: topic ${topic}`);
  await createTopic(admin, topic);
  const messages = expectedMessages(label);
  const delivered = await produce(kafka, topic, messages, compression, idempotent);
  const consumed = await consumeAll(kafka, topic, messages.length);
  const byPartition = verify(`kafkajs ${label}`, messages, consumed, delivered);
  if (args.skipWatermarks) {
    console.log(`skip ${topic}: ListOffsets check (--skip-watermark-check)`);
    return;
  }
  const offsets = await admin.fetchTopicOffsets(topic);
  for (const o of offsets) {
    const n = (byPartition.get(o.partition) ?? []).length;
    check(
      Number(o.low) === 0 && Number(o.high) === n,
      `${topic}[${o.partition}]: ListOffsets low ${o.low} high ${o.high}, consumed ${n}`,
    );
  }
}

async function main() {
  const args = parseArgs(process.argv);
  const kafka = new Kafka({
    clientId: 'sluice-kafkajs-roundtrip',
    brokers: [args.bootstrap],
    logLevel: logLevel.WARN,
    retry: { retries: 5 },
  });
  console.log(`kafkajs ${require('kafkajs/package.json').version}`);
  console.log('skip zstd: the KafkaJS zstd codec (@kafkajs/zstd) needs a native build');
  const admin = kafka.admin();
  await admin.connect();
  try {
    await roundtrip(kafka, admin, args, 'none', CompressionTypes.None, false);
    await roundtrip(kafka, admin, args, 'gzip', CompressionTypes.GZIP, false);
    await roundtrip(kafka, admin, args, 'snappy', CompressionTypes.Snappy, false);
    await roundtrip(kafka, admin, args, 'lz4', CompressionTypes.LZ4, false);
    await roundtrip(kafka, admin, args, 'idempotent', CompressionTypes.GZIP, true);
  } finally {
    await admin.disconnect();
  }
  console.log('all checks passed');
}

main().catch((error) => {
  const message = error instanceof CheckFailed ? error.message : `${error.name}: ${error.message}`;
  console.error(`FAILED: ${message}`);
  process.exit(1);
});
