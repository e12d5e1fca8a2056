#!/usr/bin/env node
// demo.mjs — end-to-end check of a running relay, using only the external contract.
//
//   node examples/js/demo.mjs --url http://127.0.0.1:8000 --token TOKEN [--frames 5] [--timeout 15]
//
// 1. registers a new stream over REST (POST /api/streams/register)
// 2. connects a dashboard consumer (subscribe, frameFormat "binary": video-frame + alert + stream-status)
// 3. connects an ML service (subscribe, consumes video-frame as JSON, produces ["alert"])
// 4. connects a producer (register) and sends N small JPEG frames in the binary form
// 5. the ML service sends one alert with a `ref`, waits for `alert-stored`, then resends the same
//    ref and checks the relay only confirms it again (same id, no second delivery)
// 6. checks the producer and the dashboard each got the alert once, and the dashboard saw
//    online → streaming → offline
// Prints one JSON summary line on stdout; exit 0 on success, 1 on failure or timeout, 2 on bad usage.

import { parseArgs } from "node:util";
import { RelayClient, registerStream, listAlerts, newRef } from "./relay-client.mjs";

// An 8x8 baseline JPEG (quality 70, red | blue halves), 659 bytes; decodes with OpenCV / any JPEG decoder.
const TINY_JPEG_B64 =
  "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAoHBwgHBgoICAgLCgoLDhgQDg0NDh0VFhEYIx8lJCIfIiEmKzcvJik0KSEiMEExNDk7Pj4+JS5ESUM8SDc9Pjv/" +
  "2wBDAQoLCw4NDhwQEBw7KCIoOzs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozs7Ozv/wAARCAAIAAgDASIAAhEBAxEB/8QAHwAA" +
  "AQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRol" +
  "JicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW" +
  "19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh" +
  "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJma" +
  "oqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDBsP8Alp+H9aKKK+qyH/kXU/n/AOlM8zi/" +
  "/kd1v+3f/SIn/9k=";
const TINY_JPEG = Buffer.from(TINY_JPEG_B64, "base64");

const USAGE = `usage: node demo.mjs --url http://127.0.0.1:8000 --token TOKEN [--frames 5] [--timeout 15] [--auth header|query|message] [--verbose]
  --url      relay base URL (http(s)://host:port); env RELAY_URL
  --token    bearer token (relay users add NAME prints one); env RELAY_TOKEN
  --frames   number of frames to send (default 5)
  --timeout  give up after this many seconds (default 15)
  --auth     how the WebSocket presents the token: header (default), query (?token=), message ({"type":"auth"})`;

function parseCli() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        url: { type: "string", default: process.env.RELAY_URL ?? "http://127.0.0.1:8000" },
        token: { type: "string", default: process.env.RELAY_TOKEN },
        frames: { type: "string", default: "5" },
        timeout: { type: "string", default: "15" },
        auth: { type: "string", default: "header" },
        verbose: { type: "boolean", short: "v", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (err) {
    usageError(err.message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (!values.token) usageError("--token is required (or set RELAY_TOKEN)");
  const frames = Number(values.frames);
  const timeout = Number(values.timeout);
  if (!Number.isInteger(frames) || frames < 1) usageError("--frames must be a positive integer");
  if (!(timeout > 0)) usageError("--timeout must be a positive number of seconds");
  if (!["header", "query", "message"].includes(values.auth)) usageError("--auth must be header, query or message");
  return { ...values, frames, timeout };
}

function usageError(msg) {
  console.error(`demo: ${msg}\n${USAGE}`);
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `cond` until true; on deadline throw, naming `what` (a string, or a function for the latest state). */
async function until(cond, what, deadline) {
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`);
    await sleep(20);
  }
}

async function main() {
  const opts = parseCli();
  const started = Date.now();
  const deadline = started + opts.timeout * 1000;
  const log = (...a) => opts.verbose && console.error("[demo]", ...a);
  const clients = [];
  const relayErrors = [];

  // Hard stop: whatever hangs, the demo ends with a clear message and a non-zero code.
  const killer = setTimeout(() => fail(new Error(`timed out after ${opts.timeout} s`)), opts.timeout * 1000 + 500);
  killer.unref();

  let failing = false;
  async function fail(err) {
    if (failing) return;
    failing = true;
    const summary = { ok: false, error: err.message, relayErrors, elapsedMs: Date.now() - started };
    console.error(`demo: FAILED: ${err.message}`);
    console.log(JSON.stringify(summary));
    await Promise.race([Promise.all(clients.map((c) => c.close())), sleep(1000)]);
    process.exit(1);
  }

  try {
    // 1. REST: register a stream.
    const reg = await registerStream(opts.url, opts.token, {
      deviceName: "js-demo-camera",
      deviceType: "demo",
      metadata: { app: "examples/js/demo.mjs" },
    });
    const streamId = reg?.streamId;
    if (typeof streamId !== "string" || !/^[A-Za-z0-9_-]+$/.test(streamId)) throw new Error(`bad streamId from register: ${JSON.stringify(reg)}`);
    log("stream", streamId);

    const mk = (name) => {
      const c = new RelayClient({ url: opts.url, token: opts.token, authMode: opts.auth, reconnect: false, alertResendMs: 1000 });
      // In this scripted exchange every relay `error` means something is wrong: stop at once.
      c.on("relay-error", (e) => {
        relayErrors.push({ client: name, ...e });
        fail(new Error(`${name} got an error from the relay: ${e.code}: ${e.message}`));
      });
      c.on("unauthorized", ({ code, reason, httpStatus }) =>
        fail(new Error(`${name}: relay refused the token (${httpStatus ? `HTTP ${httpStatus}` : `close ${code} ${reason}`})`)),
      );
      c.on("close", ({ code, reason }) => log(name, "closed", code, reason));
      clients.push(c);
      return c;
    };
    const remaining = () => Math.max(1, deadline - Date.now());

    // 2. Dashboard consumer: binary frames, alerts, status.
    const dashboard = mk("dashboard");
    const dash = { frames: [], alerts: [], statuses: [], authOk: false };
    dashboard.on("auth-ok", () => (dash.authOk = true));
    dashboard.on("frame", (f) => dash.frames.push(f));
    dashboard.on("alert", (a) => dash.alerts.push(a));
    dashboard.on("stream-status", (s) => {
      log("dashboard status", s.status);
      if (s.streamId === streamId) dash.statuses.push(s.status);
    });
    await dashboard.subscribe(streamId, {
      clientType: "dashboard",
      consumes: ["video-frame", "alert", "stream-status"],
      frameFormat: "binary",
    });
    log("dashboard subscribed");

    // 3. ML service: JSON frames in, alerts out.
    const ml = mk("ml-service");
    const mlState = { frames: [], alertsEcho: 0 };
    ml.on("frame", (f) => mlState.frames.push(f));
    ml.on("alert", () => mlState.alertsEcho++); // must stay 0: the sender gets alert-stored, not its alert
    await ml.subscribe(streamId, {
      clientType: "ml-service",
      consumes: ["video-frame"],
      produces: ["alert"],
      frameFormat: "json",
    });
    log("ml-service subscribed");

    // 4. Producer (the "phone").
    const producer = mk("producer");
    const prod = { alerts: [] };
    producer.on("alert", (a) => prod.alerts.push(a));
    await producer.register(streamId, { clientType: "mobile", produces: ["video-frame"], consumes: ["alert"] });
    log("producer registered");

    const t0 = Date.now();
    const sentTimestamps = [];
    for (let i = 0; i < opts.frames; i++) {
      const ts = t0 + i * 100;
      sentTimestamps.push(ts);
      const r = producer.sendFrame(streamId, TINY_JPEG, { timestamp: ts });
      if (r === "dropped") throw new Error("producer socket closed while sending frames");
      await sleep(100); // ~10 fps
    }
    log("frames sent", opts.frames);

    await until(() => mlState.frames.length >= 1, "the ML service's first frame", deadline);

    // 5. The ML service raises one alert, confirmed by alert-stored (resent until then).
    const ref = newRef("demo");
    const alert = {
      streamId,
      severity: "high",
      message: "person detected (demo)",
      metadata: { confidence: 0.93, location: { x: 0.4, y: 0.6 }, objectType: "person" },
      timestamp: Date.now(),
      ref,
    };
    const stored = await ml.sendAlert(alert, { timeoutMs: remaining() });
    log("alert-stored", stored);
    if (!stored.id || stored.ref !== ref) throw new Error(`bad alert-stored: ${JSON.stringify(stored)}`);

    // Resending the same ref must only be confirmed again: same id, no second alert.
    const again = await ml.sendAlert(alert, { timeoutMs: remaining() });
    if (again.id !== stored.id) throw new Error(`resent ref ${ref} got a new id ${again.id} (first ${stored.id})`);

    // 6. Deliveries.
    await until(() => dash.frames.length >= opts.frames, () => `${opts.frames} frames at the dashboard (got ${dash.frames.length})`, deadline);
    await until(() => prod.alerts.length >= 1, "the alert at the producer", deadline);
    await until(() => dash.alerts.length >= 1, "the alert at the dashboard", deadline);

    for (const [i, f] of dash.frames.entries()) {
      if (f.form !== "binary") throw new Error(`dashboard asked for binary frames, got ${f.form}`);
      if (f.header.streamId !== streamId) throw new Error(`frame ${i} for the wrong stream ${f.header.streamId}`);
      if (!f.bytes.equals(TINY_JPEG)) throw new Error(`frame ${i} bytes differ from the JPEG sent (${f.bytes.length} vs ${TINY_JPEG.length} bytes)`);
      if (f.header.timestamp !== sentTimestamps[i]) throw new Error(`frame ${i} timestamp ${f.header.timestamp}, expected ${sentTimestamps[i]}`);
    }
    for (const f of mlState.frames) {
      if (f.form !== "json" || !f.bytes.equals(TINY_JPEG)) throw new Error("ML service's JSON frame does not carry the JPEG sent");
    }
    const got = prod.alerts[0];
    if (got.id !== stored.id || got.message !== alert.message || got.severity !== alert.severity) {
      throw new Error(`producer got an unexpected alert: ${JSON.stringify(got)}`);
    }

    // Producer leaves: the dashboard must see the stream go offline.
    await producer.close();
    // (A relay may also announce the current status right after `subscribe`: only the order of
    // online -> streaming -> offline after that matters.)
    const seenInOrder = (...want) => {
      let i = 0;
      for (const s of dash.statuses) if (s === want[i]) i++;
      return i === want.length;
    };
    await until(
      () => seenInOrder("online", "streaming", "offline"),
      () => `statuses online, streaming, offline in order (saw ${JSON.stringify(dash.statuses)})`,
      deadline,
    );

    // Give a duplicate delivery a moment to show up, then count.
    await sleep(300);
    if (prod.alerts.length !== 1 || dash.alerts.length !== 1) {
      throw new Error(`alert delivered more than once (producer ${prod.alerts.length}, dashboard ${dash.alerts.length})`);
    }
    if (mlState.alertsEcho !== 0) throw new Error("the ML service got its own alert back");

    // REST sees the stored alert too.
    const history = await listAlerts(opts.url, opts.token, { streamId, limit: 10 });
    const restHasIt = Array.isArray(history?.alerts) && history.alerts.some((a) => a.id === stored.id);
    if (!restHasIt) throw new Error(`GET /api/alerts?streamId=${streamId} does not list alert ${stored.id}`);

    const summary = {
      ok: true,
      streamId,
      framesSent: opts.frames,
      framesReceived: dash.frames.length,
      mlFramesReceived: mlState.frames.length,
      alertsReceived: prod.alerts.length,
      dashboardAlertsReceived: dash.alerts.length,
      alertId: stored.id,
      alertRef: ref,
      statuses: dash.statuses,
      relayErrors: relayErrors.length,
      authMode: opts.auth,
      elapsedMs: Date.now() - started,
    };
    await Promise.race([Promise.all(clients.map((c) => c.close())), sleep(1000)]);
    clearTimeout(killer);
    console.log(JSON.stringify(summary));
    process.exit(0);
  } catch (err) {
    await fail(err);
  }
}

main();
