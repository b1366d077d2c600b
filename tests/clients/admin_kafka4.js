#!/usr/bin/env node
// KafkaJS admin createPartitions with manual assignments (issue 15 item 6): assignments
// naming this broker grow the topic; an unknown broker 10 is INVALID_REPLICA_ASSIGNMENT and
// adds nothing.
//
// Usage: node admin_kafka4.js --bootstrap HOST:PORT
'use strict';

const { Kafka, logLevel } = require('kafkajs');

class CheckFailed extends Error {}

function check(condition, message) {
  console.log(`${condition ? 'ok  ' : 'FAIL'} ${message}`);
  if (!condition) throw new CheckFailed(message);
}

function bootstrapArg(argv) {
  const at = argv.indexOf('--bootstrap');
  if (at < 0 || !argv[at + 1]) throw new CheckFailed('usage: admin_kafka4.js --bootstrap HOST:PORT');
  return argv[at + 1];
}

async function partitionCount(admin, topic) {
  const described = await admin.fetchTopicMetadata({ topics: [topic] });
  return described.topics[0].partitions.length;
}

async function main() {
  const kafka = new Kafka({
    clientId: 'sluice-admin-kafka4',
    brokers: [bootstrapArg(process.argv)],
    logLevel: logLevel.NOTHING,
    retry: { retries: 2 },
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const cluster = await admin.describeCluster();
    const node = cluster.brokers[0].nodeId;
    const topic = `assigned-js-${Date.now()}`;
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await admin.createPartitions({
      topicPartitions: [{ topic, count: 3, assignments: [[node], [node]] }],
    });
    check((await partitionCount(admin, topic)) === 3, 'createPartitions with [[node], [node]] grows to 3');
    let refused = null;
    try {
      await admin.createPartitions({ topicPartitions: [{ topic, count: 4, assignments: [[10]] }] });
    } catch (e) {
      refused = e;
    }
    const types = refused ? [refused.type, ...(refused.errors || []).map((x) => x.type)] : [];
    check(types.includes('INVALID_REPLICA_ASSIGNMENT'), `broker 10 is INVALID_REPLICA_ASSIGNMENT (${types})`);
    check((await partitionCount(admin, topic)) === 3, 'the refused request added nothing');
  } finally {
    await admin.disconnect();
  }
  console.log('all checks passed');
}

main().catch((e) => {
  console.error(e instanceof CheckFailed ? `FAILED: ${e.message}` : e);
  process.exit(1);
});
