// relay-client.mjs — a small, reusable Node client for the Vigil Relay.
//
// Built only on the external contract (WebSocket `/api/streams/ws`, REST `/api/...`).
// Depends on the `ws` package; everything else is Node >= 18 (global fetch, crypto).
//
//   import { RelayClient, registerStream } from "./relay-client.mjs";
//
//   const { streamId } = await registerStream(url, token, { deviceName: "cam-1" });
//   const producer = new RelayClient({ url, token });
//   producer.register(streamId);                 // re-sent after every reconnect
//   producer.on("alert", (a) => console.log(a)); // alerts for this stream
//   await producer.ready();                      // open + authenticated
//   producer.sendFrame(streamId, jpegBytes);     // binary frame, newest-wins when backed up
//
//   const ml = new RelayClient({ url, token });
//   ml.subscribe(streamId, { clientType: "ml-service", consumes: ["video-frame"], produces: ["alert"] });
//   const { id } = await ml.sendAlert({ streamId, severity: "high", message: "person" }); // resent until alert-stored
//
//   for await (const msg of consumer.messages()) { ... } // or callbacks: on("message" | "frame" | "alert" | ...)

import { EventEmitter } from "node:events";
import { randomBytes } from "node:crypto";
import WebSocket from "ws";

// ---------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------

/** Turn `http://host:port` (or ws://, https://, wss://, with or without a path) into the WebSocket endpoint URL. */
export function wsUrlFor(baseUrl) {
  const u = new URL(baseUrl);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  if (!u.pathname.endsWith("/api/streams/ws")) {
    u.pathname = u.pathname.replace(/\/+$/, "") + "/api/streams/ws";
  }
  return u.toString();
}

/** Turn a ws(s):// or http(s):// URL into the http(s):// origin for REST calls. */
export function httpBaseFor(baseUrl) {
  const u = new URL(baseUrl);
  if (u.protocol === "ws:") u.protocol = "http:";
  else if (u.protocol === "wss:") u.protocol = "https:";
  return u.origin;
}

/**
 * Build one binary video-frame message:
 * 4-byte big-endian length N, N bytes of UTF-8 JSON header, then the frame bytes.
 */
export function encodeBinaryFrame(header, bytes) {
  const headerBytes = Buffer.from(JSON.stringify({ type: "video-frame", ...header }), "utf8");
  const body = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer ?? bytes, bytes.byteOffset ?? 0, bytes.byteLength);
  const out = Buffer.allocUnsafe(4 + headerBytes.length + body.length);
  out.writeUInt32BE(headerBytes.length, 0);
  headerBytes.copy(out, 4);
  body.copy(out, 4 + headerBytes.length);
  return out;
}

/** Parse one binary video-frame message into `{ header, bytes }`. Throws on a malformed message. */
export function decodeBinaryFrame(data) {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  if (buf.length < 4) throw new Error(`binary frame too short (${buf.length} bytes)`);
  const n = buf.readUInt32BE(0);
  if (n > buf.length - 4) throw new Error(`binary frame header length ${n} exceeds message (${buf.length} bytes)`);
  const header = JSON.parse(buf.subarray(4, 4 + n).toString("utf8"));
  return { header, bytes: buf.subarray(4 + n) };
}

/** Exponential backoff with full jitter: a uniformly random delay in [0, min(cap, base * 2^attempt)). */
export function backoffDelay(attempt, { baseMs = 500, capMs = 30_000 } = {}) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(Math.random() * ceiling);
}

/** A random URL-safe id, used for alert `ref`s. */
export function newRef(prefix = "ref") {
  return `${prefix}_${randomBytes(12).toString("base64url")}`;
}

// ---------------------------------------------------------------------------
// REST helpers
// ---------------------------------------------------------------------------

export class RelayHttpError extends Error {
  constructor(status, body) {
    const code = body?.error?.code ?? `http-${status}`;
    super(`HTTP ${status} ${code}: ${body?.error?.message ?? JSON.stringify(body)}`);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

async function restCall(baseUrl, method, path, { token, body, timeoutMs = 10_000 } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const url = httpBaseFor(baseUrl) + path;
  let res;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const why = err.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : (err.cause?.code ?? err.cause?.message ?? err.message);
    throw new Error(`cannot reach the relay: ${method} ${url}: ${why}`);
  }
  const text = await res.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { raw: text };
  }
  if (!res.ok) throw new RelayHttpError(res.status, parsed);
  return parsed;
}

/** `POST /api/auth/token` → `{ token, userId }`. */
export function login(baseUrl, username, password) {
  return restCall(baseUrl, "POST", "/api/auth/token", { body: { username, password } });
}

/** `POST /api/streams/register` → `{ streamId, message }`. */
export function registerStream(baseUrl, token, { deviceName = "node-client", deviceType = "camera", metadata = {} } = {}) {
  return restCall(baseUrl, "POST", "/api/streams/register", { token, body: { deviceName, deviceType, metadata } });
}

/** `GET /api/streams/list` → `{ streams: [...] }`. */
export function listStreams(baseUrl, token) {
  return restCall(baseUrl, "GET", "/api/streams/list", { token });
}

/** `GET /api/alerts?...` → `{ alerts: [...], nextCursor }`. */
export function listAlerts(baseUrl, token, query = {}) {
  const qs = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null)).toString();
  return restCall(baseUrl, "GET", `/api/alerts${qs ? `?${qs}` : ""}`, { token });
}

// ---------------------------------------------------------------------------
// RelayClient
// ---------------------------------------------------------------------------

const CLOSE_POLICY_VIOLATION = 1008; // bad / missing token: do not reconnect, re-login instead
const CLOSE_TOO_BIG = 1009; // a message we sent was over the relay's size limit
const REFUSALS = new Set(["forbidden", "invalid-message", "not-registered", "unauthorized"]); // of a register/subscribe
const TYPED_EVENTS = new Set(["auth-ok", "registered", "subscribed", "frame", "alert", "alert-stored", "stream-status", "pong", "relay-error"]);

/**
 * One WebSocket session to the relay that survives reconnects.
 *
 * Events (EventEmitter):
 *   "open"           ()                         socket open (each connection)
 *   "auth-ok"        (msg)                      relay accepted the token ({"type":"auth-ok","userId"})
 *   "ready"          ({ userId })               authenticated (auth-ok, or the first registered/subscribed)
 *   "registered"     (msg) / "subscribed" (msg)
 *   "frame"          ({ header, bytes, form })  a video frame; form is "binary" or "json"
 *   "alert"          (msg)                      a (live or replayed) alert; duplicates by id are dropped
 *   "alert-stored"   (msg)
 *   "stream-status"  (msg)
 *   "relay-error"    (msg)                      an `{"type":"error"}` message (connection stays open)
 *   "message"        (msg)                      every message; frames as { type: "video-frame", header, bytes, form }
 *   "close"          ({ code, reason, willReconnect })
 *   "reconnecting"   ({ attempt, delayMs })
 *   "unauthorized"   ({ code, reason })         1008 / HTTP 401: the client stops; get a new token
 *   "error"          (err)                      transport errors (only emitted if someone listens)
 */
export class RelayClient extends EventEmitter {
  /**
   * @param {object} opts
   * @param {string} opts.url         relay base URL (http(s)://host:port) or the ws(s):// endpoint
   * @param {string} opts.token       bearer token
   * @param {"header"|"query"|"message"} [opts.authMode="header"] how the token is presented
   * @param {boolean} [opts.reconnect=true]
   * @param {number} [opts.backoffBaseMs=500]
   * @param {number} [opts.backoffCapMs=30000]
   * @param {number} [opts.alertResendMs=5000]  resend an unconfirmed alert this often
   * @param {number} [opts.maxBufferedBytes=262144]  above this, frames wait in a one-slot "newest wins" buffer
   * @param {number} [opts.pingIntervalMs=25000]    app-level {"type":"ping"}; 0 disables
   * @param {number} [opts.pongTimeoutMs=10000]
   */
  constructor(opts) {
    super();
    if (!opts?.url) throw new Error("RelayClient: url is required");
    if (!opts?.token) throw new Error("RelayClient: token is required");
    this.url = wsUrlFor(opts.url);
    this.token = opts.token;
    this.authMode = opts.authMode ?? "header";
    this.reconnect = opts.reconnect ?? true;
    this.backoff = { baseMs: opts.backoffBaseMs ?? 500, capMs: opts.backoffCapMs ?? 30_000 };
    this.alertResendMs = opts.alertResendMs ?? 5_000;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? 256 * 1024;
    this.pingIntervalMs = opts.pingIntervalMs ?? 25_000;
    this.pongTimeoutMs = opts.pongTimeoutMs ?? 10_000;
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 10_000;

    this.ws = null;
    this.closedByUser = false;
    this.authenticated = false;
    this.attempt = 0;
    this.userId = null;

    this.registrations = new Map(); // streamId -> register message (without type)
    this.subscriptions = new Map(); // streamId -> subscribe options
    this.lastAlertId = new Map(); // streamId -> id of the last alert seen (for sinceAlertId)
    this.seenAlertIds = new Set(); // bounded, to drop duplicates
    this.pendingAlerts = new Map(); // ref -> { msg, resolve, reject, timer }
    this.latestFrame = null; // the newest frame waiting for the socket to drain
    this._drainTimer = null;
    // framesReplaced: outgoing frames overwritten in the newest-frame slot; framesDropped: outgoing
    // frames dropped while disconnected; framesSkipped: incoming frames dropped by messages().
    this.stats = { framesSent: 0, framesReplaced: 0, framesDropped: 0, framesSkipped: 0, reconnects: 0 };

    this._readyWaiters = [];
    this._iterators = new Set();
    this._waiters = new Set();
    this._connect();
  }

  // ----- public API --------------------------------------------------------

  /** Resolves once the current connection is open and authenticated (auth-ok, or the first registered/subscribed). */
  ready(timeoutMs = 15_000) {
    if (this.authenticated && this.ws?.readyState === WebSocket.OPEN) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      const t = setTimeout(() => {
        this._readyWaiters = this._readyWaiters.filter((w) => w !== waiter);
        reject(new Error(`relay not ready after ${timeoutMs} ms`));
      }, timeoutMs);
      waiter.resolve = () => (clearTimeout(t), resolve());
      waiter.reject = (e) => (clearTimeout(t), reject(e));
      this._readyWaiters.push(waiter);
    });
  }

  /**
   * Register as the producer of `streamId`: it may send the stream's frames and alerts. Remembered
   * and re-sent after every reconnect, resuming its alerts from the last one seen (see
   * `_sendRegister`). Rejects if the relay refuses (e.g. `forbidden`: not the user's stream).
   */
  register(streamId, { clientType = "mobile", produces = ["video-frame", "alert"], consumes = ["alert"] } = {}) {
    this.registrations.set(streamId, { clientType, streamId, produces, consumes });
    const confirmed = this._waitFor(
      (m) => m.type === "registered" && m.streamId === streamId,
      undefined,
      (m) => this._refusal(m, streamId),
    );
    confirmed.catch((err) => err.code && this.registrations.delete(streamId)); // refused: not re-sent after reconnects
    this._sendRegister(streamId);
    return confirmed;
  }

  /**
   * Subscribe to `streamId` (dashboard or ML service). Re-sent after every reconnect with
   * `sinceAlertId` = the last alert id seen on this stream, so no alert is missed.
   */
  subscribe(streamId, { clientType = "dashboard", consumes = ["video-frame", "alert", "stream-status"], produces, frameFormat = "binary", sinceAlertId } = {}) {
    this.subscriptions.set(streamId, { clientType, consumes, produces, frameFormat });
    if (sinceAlertId && !this.lastAlertId.has(streamId)) this.lastAlertId.set(streamId, sinceAlertId);
    const confirmed = this._waitFor(
      (m) => m.type === "subscribed" && m.streamId === streamId,
      undefined,
      (m) => this._refusal(m, streamId),
    );
    confirmed.catch((err) => err.code && this.subscriptions.delete(streamId)); // refused: not re-sent after reconnects
    this._sendSubscribe(streamId);
    return confirmed;
  }

  unsubscribe(streamId) {
    this.subscriptions.delete(streamId);
    this._sendJson({ type: "unsubscribe", streamId });
  }

  /**
   * Send one JPEG as a binary frame. Never queues stale frames: if the socket is backed up
   * (bufferedAmount > maxBufferedBytes), the frame replaces any frame already waiting and goes
   * out as soon as the socket drains. Returns "sent" | "waiting" | "dropped" (not connected).
   */
  sendFrame(streamId, jpegBytes, { timestamp = Date.now(), contentType = "image/jpeg" } = {}) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      this.stats.framesDropped++;
      return "dropped";
    }
    const msg = encodeBinaryFrame({ streamId, timestamp, contentType }, jpegBytes);
    if (ws.bufferedAmount > this.maxBufferedBytes) {
      if (this.latestFrame) this.stats.framesReplaced++;
      this.latestFrame = msg;
      this._scheduleDrain();
      return "waiting";
    }
    ws.send(msg, { binary: true }, () => this._drain());
    this.stats.framesSent++;
    return "sent";
  }

  /** Send a frame in the JSON/base64 form (about 33% bigger; for clients that cannot send binary). */
  sendFrameJson(streamId, jpegBytes, { timestamp = Date.now(), contentType = "image/jpeg" } = {}) {
    return this._sendJson({ type: "video-frame", streamId, data: Buffer.from(jpegBytes).toString("base64"), timestamp, contentType });
  }

  /**
   * Send an alert and resolve with the relay's `alert-stored` `{ id, ref }`. The alert carries a
   * `ref` (generated when absent) and is resent every `alertResendMs` and after every reconnect
   * until `alert-stored` arrives; the relay stores a given (stream, ref) once, so resending is safe.
   * Rejects only on `close()` or after `timeoutMs` (default: never give up).
   */
  sendAlert({ streamId, severity = "medium", message, metadata = {}, timestamp = Date.now(), ref = newRef("alert") }, { timeoutMs = 0 } = {}) {
    const msg = { type: "alert", streamId, severity, message, metadata, timestamp, ref };
    return new Promise((resolve, reject) => {
      const entry = { msg, resolve, reject, timer: null, deadline: null, sends: 0 };
      if (timeoutMs > 0) {
        entry.deadline = setTimeout(() => {
          this._clearPending(ref);
          reject(new Error(`alert ${ref} not confirmed after ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.pendingAlerts.set(ref, entry);
      this._sendPendingAlert(ref);
    });
  }

  /** App-level ping; resolves on the next pong. */
  ping(timeoutMs = this.pongTimeoutMs) {
    const pong = this._waitFor((m) => m.type === "pong", timeoutMs);
    this._sendJson({ type: "ping" });
    return pong;
  }

  /**
   * Async iteration over every incoming message (frames as { type: "video-frame", header, bytes, form }).
   *   for await (const msg of client.messages()) { ... }
   * The iterator ends when the client is closed (or when the loop breaks). If the loop is slower
   * than the feed, at most `maxFrames` video frames wait (the oldest are dropped); other messages
   * (alerts, status) are never dropped.
   */
  messages({ maxFrames = 8 } = {}) {
    const queue = [];
    let frames = 0;
    let wake = null;
    let done = this.closedByUser;
    const it = {
      push: (m) => {
        if (m.type === "video-frame" && ++frames > maxFrames) {
          queue.splice(queue.findIndex((q) => q.type === "video-frame"), 1);
          frames--;
          this.stats.framesSkipped++; // incoming, dropped by a slow messages() loop
        }
        queue.push(m);
        if (wake) (wake(), (wake = null));
      },
      end: () => {
        done = true;
        if (wake) (wake(), (wake = null));
      },
    };
    this._iterators.add(it);
    const self = this;
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      async next() {
        while (!queue.length && !done) await new Promise((r) => (wake = r));
        if (queue.length) {
          const value = queue.shift();
          if (value.type === "video-frame") frames--;
          return { value, done: false };
        }
        return { value: undefined, done: true };
      },
      async return() {
        done = true;
        self._iterators.delete(it);
        return { value: undefined, done: true };
      },
    };
  }

  /** Close for good: no reconnect; pending alerts are rejected. */
  close(code = 1000, reason = "client closing") {
    this.closedByUser = true;
    for (const w of [...this._waiters]) {
      w.cleanup();
      w.reject(new Error("client closed"));
    }
    clearInterval(this._pingTimer);
    clearTimeout(this._pongTimer);
    clearTimeout(this._reconnectTimer);
    for (const [ref, p] of this.pendingAlerts) {
      this._clearPending(ref);
      p.reject(new Error(`client closed before alert ${ref} was stored`));
    }
    for (const w of this._readyWaiters.splice(0)) w.reject(new Error("client closed"));
    for (const it of this._iterators) it.end();
    this._iterators.clear();
    const ws = this.ws;
    if (!ws) return Promise.resolve();
    if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => (ws.terminate(), resolve()), 2_000);
      ws.once("close", () => (clearTimeout(t), resolve()));
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(code, reason);
    });
  }

  // ----- connection lifecycle ---------------------------------------------

  _connect() {
    let url = this.url;
    // JPEG does not compress: permessage-deflate would only burn CPU, so it is not offered.
    const options = { handshakeTimeout: this.handshakeTimeoutMs, maxPayload: 64 * 1024 * 1024, perMessageDeflate: false };
    if (this.authMode === "header") options.headers = { Authorization: `Bearer ${this.token}` };
    else if (this.authMode === "query") {
      const u = new URL(url);
      u.searchParams.set("token", this.token);
      url = u.toString();
    }
    const ws = new WebSocket(url, options);
    this.ws = ws;
    this.authenticated = false;
    let httpStatus = null;

    ws.on("open", () => {
      if (this.closedByUser) return ws.close(1000);
      this.emit("open");
      // Messages are handled in order, so everything can go out now: the auth message (if any)
      // first, then register / subscribe, then anything that still waits for confirmation.
      if (this.authMode === "message") ws.send(JSON.stringify({ type: "auth", token: this.token }));
      for (const id of this.registrations.keys()) this._sendRegister(id);
      for (const id of this.subscriptions.keys()) this._sendSubscribe(id);
      for (const ref of this.pendingAlerts.keys()) this._sendPendingAlert(ref);
      this._startHeartbeat();
    });

    ws.on("message", (data, isBinary) => this._onMessage(data, isBinary));

    ws.on("error", (err) => {
      const m = /Unexpected server response: (\d+)/.exec(err.message);
      if (m) httpStatus = Number(m[1]);
      if (this.listenerCount("error")) this.emit("error", err);
    });

    ws.on("close", (code, reasonBuf) => {
      const reason = reasonBuf?.toString() ?? "";
      clearInterval(this._pingTimer);
      clearTimeout(this._pongTimer);
      this.authenticated = false;
      this.latestFrame = null; // a stale frame is worthless after a reconnect
      if (this.ws === ws) this.ws = null;
      const unauthorized = code === CLOSE_POLICY_VIOLATION || httpStatus === 401 || httpStatus === 403;
      const willReconnect = this.reconnect && !this.closedByUser && !unauthorized;
      if (code === CLOSE_TOO_BIG) {
        this.emit("relay-error", { type: "error", code: "too-large", message: reason || "message over the relay's size limit (1009)" });
      }
      this.emit("close", { code, reason, willReconnect, httpStatus });
      if (unauthorized && !this.closedByUser) {
        const err = new Error(`unauthorized (${httpStatus ? `HTTP ${httpStatus}` : `close ${code} ${reason}`}): get a new token`);
        err.code = "unauthorized";
        for (const w of this._readyWaiters.splice(0)) w.reject(err);
        for (const w of [...this._waiters]) {
          w.cleanup();
          w.reject(err);
        }
        this.emit("unauthorized", { code, reason, httpStatus });
        this.closedByUser = true; // stop: reconnecting with the same token cannot succeed
        for (const [ref, p] of this.pendingAlerts) {
          this._clearPending(ref);
          p.reject(err);
        }
        for (const it of this._iterators) it.end();
        return;
      }
      if (willReconnect) {
        const delayMs = backoffDelay(this.attempt, this.backoff);
        this.attempt++;
        this.stats.reconnects++;
        this.emit("reconnecting", { attempt: this.attempt, delayMs });
        this._reconnectTimer = setTimeout(() => this._connect(), delayMs);
      }
    });
  }

  _onMessage(data, isBinary) {
    let msg;
    if (isBinary) {
      try {
        const { header, bytes } = decodeBinaryFrame(data);
        msg = { type: header.type ?? "video-frame", header, bytes, form: "binary" };
      } catch (err) {
        if (this.listenerCount("error")) this.emit("error", err);
        return;
      }
    } else {
      try {
        msg = JSON.parse(data.toString("utf8"));
      } catch (err) {
        if (this.listenerCount("error")) this.emit("error", err);
        return;
      }
      if (msg.type === "video-frame") {
        const { data: b64, ...header } = msg;
        msg = { type: "video-frame", header, bytes: Buffer.from(b64 ?? "", "base64"), form: "json" };
      }
    }

    switch (msg.type) {
      case "auth-ok":
        this.userId = msg.userId;
        this._markAuthenticated();
        break;
      case "registered":
      case "subscribed":
        this._markAuthenticated(); // proof of authentication even if auth-ok came earlier/later
        break;
      case "alert": {
        if (msg.id !== undefined) {
          if (this.seenAlertIds.has(msg.id)) return; // duplicate (e.g. replay overlapping live)
          this.seenAlertIds.add(msg.id);
          if (this.seenAlertIds.size > 5000) this.seenAlertIds.delete(this.seenAlertIds.values().next().value);
          if (msg.streamId) this.lastAlertId.set(msg.streamId, msg.id);
        }
        break;
      }
      case "alert-stored": {
        const p = this.pendingAlerts.get(msg.ref);
        if (p) {
          this._clearPending(msg.ref);
          p.resolve({ id: msg.id, ref: msg.ref });
        }
        break;
      }
      case "pong":
        clearTimeout(this._pongTimer);
        break;
      case "error": {
        // The relay echoes the refused alert's `ref` (and `streamId`): any refusal but
        // `rate-limited` (resent later) is final, and resending the alert cannot fix it.
        const p = msg.ref !== undefined ? this.pendingAlerts.get(msg.ref) : undefined;
        if (p && msg.code !== "rate-limited") {
          this._clearPending(msg.ref);
          const err = new Error(`alert ${msg.ref} rejected: ${msg.code}: ${msg.message}`);
          err.code = msg.code;
          p.reject(err);
        }
        break;
      }
      default:
        break;
    }

    this.emit("message", msg);
    const event = msg.type === "video-frame" ? "frame" : msg.type === "error" ? "relay-error" : msg.type;
    if (TYPED_EVENTS.has(event)) this.emit(event, msg);
    for (const it of this._iterators) it.push(msg);
  }

  _markAuthenticated() {
    if (this.authenticated) return;
    this.authenticated = true;
    this.attempt = 0; // a good session resets the backoff
    this.emit("ready", { userId: this.userId });
    for (const w of this._readyWaiters.splice(0)) w.resolve();
  }

  _startHeartbeat() {
    clearInterval(this._pingTimer);
    if (!this.pingIntervalMs) return;
    this._pingTimer = setInterval(() => {
      if (this.ws?.readyState !== WebSocket.OPEN) return;
      this._sendJson({ type: "ping" });
      clearTimeout(this._pongTimer);
      this._pongTimer = setTimeout(() => this.ws?.terminate(), this.pongTimeoutMs); // dead link: reconnect
    }, this.pingIntervalMs);
  }

  // ----- sending -----------------------------------------------------------

  _sendJson(obj) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  /**
   * `register` cannot resume alerts, so once this producer has seen an alert of its stream it
   * registers without consuming and subscribes to its own stream for what it consumes, with
   * `sinceAlertId`: alerts raised while it was offline are replayed, as for any consumer.
   */
  _sendRegister(streamId) {
    const r = this.registrations.get(streamId);
    if (!r) return;
    const since = this.lastAlertId.get(streamId);
    if (!since || !r.consumes.length) {
      this._sendJson({ type: "register", ...r });
      return;
    }
    this._sendJson({ type: "register", ...r, consumes: [] });
    this._sendJson({ type: "subscribe", streamId, clientType: r.clientType, consumes: r.consumes, sinceAlertId: since });
  }

  /** Whether `msg` is the relay refusing a register/subscribe of `streamId`. */
  _refusal(msg, streamId) {
    return msg.type === "error" && msg.streamId === streamId && msg.ref === undefined && REFUSALS.has(msg.code);
  }

  _sendSubscribe(streamId) {
    const s = this.subscriptions.get(streamId);
    if (!s) return;
    const msg = { type: "subscribe", streamId, clientType: s.clientType, consumes: s.consumes, frameFormat: s.frameFormat };
    if (s.produces) msg.produces = s.produces;
    const since = this.lastAlertId.get(streamId);
    if (since) msg.sinceAlertId = since;
    this._sendJson(msg);
  }

  _sendPendingAlert(ref) {
    const p = this.pendingAlerts.get(ref);
    if (!p) return;
    clearTimeout(p.timer);
    if (this._sendJson(p.msg)) p.sends++;
    // Resend until alert-stored arrives (also covers a rate-limited or lost message).
    p.timer = setTimeout(() => this._sendPendingAlert(ref), this.alertResendMs);
  }

  _clearPending(ref) {
    const p = this.pendingAlerts.get(ref);
    if (!p) return;
    clearTimeout(p.timer);
    clearTimeout(p.deadline);
    this.pendingAlerts.delete(ref);
  }

  _scheduleDrain() {
    if (this._drainTimer) return;
    this._drainTimer = setTimeout(() => {
      this._drainTimer = null;
      this._drain();
    }, 20);
  }

  _drain() {
    const ws = this.ws;
    if (!this.latestFrame || !ws || ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > this.maxBufferedBytes) return this._scheduleDrain();
    const msg = this.latestFrame;
    this.latestFrame = null;
    ws.send(msg, { binary: true }, () => this._drain());
    this.stats.framesSent++;
  }

  // ----- helpers -----------------------------------------------------------

  /**
   * Resolve with the next message matching `pred`; reject when one matches `refused` (an `error`
   * the relay sent instead), on timeout or on close. The returned promise
   * is pre-marked as handled, so a caller that ignores it (fire-and-forget register) never gets an
   * unhandled rejection, while one that awaits it still sees the error.
   */
  _waitFor(pred, timeoutMs = 15_000, refused = () => false) {
    const p = new Promise((resolve, reject) => {
      const onMsg = (m) => {
        if (pred(m)) {
          cleanup();
          resolve(m);
        } else if (refused(m)) {
          cleanup();
          const err = new Error(`${m.code}: ${m.message}`);
          err.code = m.code;
          reject(err);
        }
      };
      const cleanup = () => {
        clearTimeout(t);
        this._waiters.delete(waiter);
        this.off("message", onMsg);
      };
      const waiter = { cleanup, reject };
      const t = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this._waiters.add(waiter);
      this.on("message", onMsg);
    });
    p.catch(() => {});
    return p;
  }
}
