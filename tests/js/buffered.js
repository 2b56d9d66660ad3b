// The official JS client's EventHubBufferedProducerClient (npm @azure/event-hubs) publishes
// through our emulator: 2 000 events by partition key (13 keys) and 1 000 without routing,
// flushed and closed, with idempotent retries on (each partition link is an idempotent
// producer: the emulator assigns its id and epoch, and every event is stamped). Prints one
// JSON line: what the success and error handlers saw.
// Usage: node buffered.js CONNECTION_STRING HUB   (NODE_PATH names the node_modules dir)
const { EventHubBufferedProducerClient } = require("@azure/event-hubs");

const KEYED = 2000;
const TOTAL = 3000;
const KEYS = 13;

async function main() {
  const [conn, hub] = process.argv.slice(2);
  const ok = [];
  const failed = [];
  const errors = [];
  const keyPartitions = {};
  const client = new EventHubBufferedProducerClient(conn, hub, {
    maxWaitTimeInMs: 500,
    enableIdempotentRetries: true,
    retryOptions: { maxRetries: 2, timeoutInMs: 20000 },
    onSendEventsSuccessHandler: ({ partitionId, events }) => {
      for (const e of events) {
        const i = e.properties.i;
        ok.push(i);
        if (i < KEYED) {
          const k = `bk-${i % KEYS}`;
          (keyPartitions[k] = keyPartitions[k] || new Set()).add(partitionId);
        }
      }
    },
    onSendEventsErrorHandler: ({ partitionId, events, error }) => {
      for (const e of events) failed.push(e.properties.i);
      errors.push(`${partitionId}: ${error}`.slice(0, 200));
    },
  });
  for (let i = 0; i < TOTAL; i++) {
    const event = { body: `buffered ${i}`, properties: { i } };
    if (i < KEYED) {
      await client.enqueueEvent(event, { partitionKey: `bk-${i % KEYS}` });
    } else {
      await client.enqueueEvent(event);
    }
  }
  await client.flush();
  await client.close({ flush: true });
  const parts = {};
  let oneEach = true;
  for (const [k, set] of Object.entries(keyPartitions)) {
    oneEach = oneEach && set.size === 1;
    parts[k] = [...set][0];
  }
  const unique = new Set(ok).size;
  const pass = failed.length === 0 && ok.length === TOTAL && unique === TOTAL && oneEach;
  console.log(JSON.stringify({ scenario: "js-buffered", ok: pass, sent: ok.length, unique, failed: failed.length, errors: errors.slice(0, 5), key_partitions: parts }));
  process.exit(pass ? 0 : 1);
}

main().catch((e) => {
  const causes = (e && e.errors ? e.errors : []).map((x) => String(x && x.message || x));
  console.log(JSON.stringify({ scenario: "js-buffered", ok: false, error: String(e && e.stack || e), causes }));
  process.exit(1);
});
