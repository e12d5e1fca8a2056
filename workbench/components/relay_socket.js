// A WebSocket to the relay that the page's login cookie authenticates, and that
// comes back by itself after a disconnect (backoff with jitter, capped).  Shared by
// the browser-side components: the stream tiles and the alert feed.

const RELAY_PATH = "/api/streams/ws";
const FIRST_RETRY_MS = 500;
const LAST_RETRY_MS = 10000;
const UNAUTHORIZED = 1008;

export class RelaySocket {
  // handlers: onReady() after auth-ok, onMessage(json), onFrame(ArrayBuffer), onDown(reason)
  constructor(handlers) {
    this.handlers = handlers;
    this.closed = false;
    this.retryMs = FIRST_RETRY_MS;
    this.timer = null;
    this.ws = null;
    this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}${RELAY_PATH}`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") {
        this.handlers.onFrame?.(event.data);
        return;
      }
      const message = JSON.parse(event.data);
      if (message.type === "auth-ok") {
        this.retryMs = FIRST_RETRY_MS;
        this.handlers.onReady?.();
      } else {
        this.handlers.onMessage?.(message);
      }
    };
    ws.onclose = (event) => {
      if (this.ws !== ws || this.closed) return;
      if (event.code === UNAUTHORIZED) {
        this.handlers.onDown?.("logged out: reload the page to log in again");
        return;  // retrying cannot help until the analyst logs in again
      }
      this.handlers.onDown?.("reconnecting");
      const delay = this.retryMs * (0.5 + Math.random() / 2);
      this.retryMs = Math.min(LAST_RETRY_MS, this.retryMs * 2);
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
    }
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
  }
}
