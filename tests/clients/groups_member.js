#!/usr/bin/env node
// One consumer-group member with KafkaJS, run as its own process by groups_scenarios.py.
// Same stdout protocol as groups_member.py (one JSON object per line): "assignment" events
// carry the member's whole assignment, "record" each record seen, "committed" each commit
// that returned. KafkaJS has no revoke callback: REBALANCING is reported as revoking all.
// Stops cleanly on SIGTERM (disconnect leaves the group); SIGKILL simulates a crash.
'use strict';

const { Kafka, logLevel } = require('kafkajs');

const START = process.hrtime.bigint();
const msSinceStart = () => Number((process.hrtime.bigint() - START) / 1000000n);
const emit = (fields) => process.stdout.write(JSON.stringify(fields) + '\n');

function parseArgs(argv) {
  const args = { sessionMs: 6000, heartbeatMs: 500, commit: false, processMs: 0, defaults: false };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === '--bootstrap') args.bootstrap = next();
    else if (a === '--group') args.group = next();
    else if (a === '--topic') args.topic = next();
    else if (a === '--session-ms') args.sessionMs = Number(next());
    else if (a === '--heartbeat-ms') args.heartbeatMs = Number(next());
    else if (a === '--process-ms') args.processMs = Number(next());
    else if (a === '--commit') args.commit = true;
    else if (a === '--defaults') args.defaults = true;
    else if (a === '--client') next();
    else throw new Error(`unknown argument ${a}`);
  }
  for (const k of ['bootstrap', 'group', 'topic']) {
    if (!args[k]) throw new Error(`--${k} is required`);
  }
  return args;
}

async function main() {
  const args = parseArgs(process.argv);
  emit({ event: 'started' });
  const kafka = new Kafka({
    clientId: 'sluice-groups-kafkajs',
    brokers: [args.bootstrap],
    logLevel: logLevel.NOTHING,
  });
  // KafkaJS heartbeats between fetches, so a fetch must not wait longer than the heartbeat.
  const options = args.defaults
    ? { groupId: args.group }
    : {
        groupId: args.group,
        sessionTimeout: args.sessionMs,
        heartbeatInterval: args.heartbeatMs,
        maxWaitTimeInMs: args.heartbeatMs,
      };
  const consumer = kafka.consumer(options);
  let owned = [];
  consumer.on(consumer.events.REBALANCING, () => {
    const revoked = owned;
    owned = [];
    emit({ event: 'assignment', kind: 'revoke', delta: revoked, partitions: [] });
  });
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    const parts = (e.payload.memberAssignment[args.topic] || []).slice().sort((a, b) => a - b);
    owned = parts;
    emit({ event: 'assignment', kind: 'assign', delta: parts, partitions: parts });
  });
  let stopping = false;
  process.on('SIGTERM', async () => {
    if (stopping) return;
    stopping = true;
    try {
      await consumer.disconnect();
    } finally {
      emit({ event: 'closed' });
      process.exit(0);
    }
  });
  await consumer.connect();
  await consumer.subscribe({ topic: args.topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      const offset = BigInt(message.offset);
      emit({ event: 'record', p: partition, o: Number(offset), ms: msSinceStart() });
      if (args.processMs) await new Promise((r) => setTimeout(r, args.processMs));
      if (args.commit) {
        const next = (offset + 1n).toString();
        await consumer.commitOffsets([{ topic: args.topic, partition, offset: next }]);
        emit({ event: 'committed', p: partition, o: Number(offset + 1n) });
      }
    },
  });
}

main().catch((e) => {
  emit({ event: 'error', error: String(e && e.stack ? e.stack : e) });
  process.exit(1);
});
