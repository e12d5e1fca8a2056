// resume_check.mjs — the Node client resumes alerts after the network comes back (driven by
// tests/test_examples.py, which cuts and restores the network and raises the alerts).
//
//   node resume_check.mjs URL TOKEN STREAM_ID COUNT
//
// A producer (register) and a dashboard (subscribe) of STREAM_ID print "ready" once attached,
// then one line per alert ("producer <message>", "dashboard <message>"), and "done" once each
// has COUNT alerts. The test checks that none was lost or doubled.
import { RelayClient } from "./relay-client.mjs";

const [url, token, streamId, count] = process.argv.slice(2);
const options = { url, token, backoffBaseMs: 20, backoffCapMs: 200, pingIntervalMs: 0 };
const clients = { producer: new RelayClient(options), dashboard: new RelayClient(options) };
const seen = { producer: 0, dashboard: 0 };
let finished = false;
for (const [name, client] of Object.entries(clients)) {
  client.on("alert", async (alert) => {
    console.log(`${name} ${alert.message}`);
    seen[name]++;
    if (!finished && seen.producer >= Number(count) && seen.dashboard >= Number(count)) {
      finished = true;
      console.log("done");
      await Promise.all(Object.values(clients).map((c) => c.close()));
      process.exit(0);
    }
  });
  client.on("unauthorized", () => process.exit(1));
}
await clients.producer.register(streamId);
await clients.dashboard.subscribe(streamId, { consumes: ["alert"] });
console.log("ready");
