#!/usr/bin/env node
// Topic configs through kafkajs' admin client (issue 15 item 1): createTopics with
// compression.type and a timestamp bound, then describeConfigs of the topic (override and
// default values) and of the broker (Kafka's names). Prints one "ok" line per check and
// "all checks passed" at the end; exits 1 on the first failure.
//
// Usage: node kafkajs_configs.js --bootstrap HOST:PORT

'use strict';

const { Kafka, logLevel, ConfigResourceTypes } = require('kafkajs');

class CheckFailed extends Error {}

function check(condition, message) {
  console.log(`${condition ? 'ok  ' : 'FAIL'} ${message}`);
  if (!condition) throw new CheckFailed(message);
}

function bootstrapArg(argv) {
  const i = argv.indexOf('--bootstrap');
  if (i < 0 || !argv[i + 1]) throw new CheckFailed('usage: kafkajs_configs.js --bootstrap HOST:PORT');
  return argv[i + 1];
}

async function main() {
  const bootstrap = bootstrapArg(process.argv);
  const kafka = new Kafka({ clientId: 'kafkajs-configs', brokers: [bootstrap], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topic = `kafkajs-configs-${Date.now()}`;
    const created = await admin.createTopics({
      waitForLeaders: true,
      topics: [{
        topic,
        numPartitions: 1,
        replicationFactor: 1,
        configEntries: [
          { name: 'compression.type', value: 'lz4' },
          { name: 'message.timestamp.before.max.ms', value: '86400000' },
        ],
      }],
    });
    check(created === true, `${topic}: created with compression.type=lz4`);

    const described = await admin.describeConfigs({
      includeSynonyms: true,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
    });
    const resource = described.resources[0];
    check(resource.errorCode === 0, `describeConfigs of ${topic} without error`);
    const byName = Object.fromEntries(resource.configEntries.map((e) => [e.configName, e]));
    check(byName['compression.type'] && byName['compression.type'].configValue === 'lz4',
      'compression.type described as lz4');
    check(byName['message.timestamp.before.max.ms'].configValue === '86400000',
      'message.timestamp.before.max.ms described as set');
    check(byName['retention.ms'].isDefault === true || byName['retention.ms'].configSource === 5,
      'retention.ms is a default');
    check(byName['retention.ms'].configSynonyms.some((s) => s.configName === 'log.retention.ms'),
      'retention.ms has the log.retention.ms synonym');

    const broker = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.BROKER, name: '0' }],
    });
    const brokerNames = broker.resources[0].configEntries.map((e) => e.configName);
    for (const name of ['num.partitions', 'default.replication.factor', 'log.retention.ms', 'advertised.listeners']) {
      check(brokerNames.includes(name), `broker describes ${name}`);
    }
  } finally {
    await admin.disconnect();
  }
}

main().then(
  () => console.log('all checks passed'),
  (error) => {
    console.error(`FAILED: ${error instanceof CheckFailed ? error.message : error.stack || error}`);
    process.exit(1);
  },
);
