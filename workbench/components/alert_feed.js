// The page's ear for alerts: one WebSocket to the relay (RelaySocket, from
// relay_socket.js which AlertFeed prepends), subscribed to the alerts of every
// stream in model.stream_ids, handing each alert to the Python session with
// model.send_msg, and each review change (alert-updated) too.  After a disconnect it resubscribes with sinceAlertId, so the
// relay replays what the page missed.  It draws nothing; its element lists the
// streams whose alerts it receives in data-subscribed, for tests and tools.

class Feed {
  constructor(model, el) {
    this.model = model;
    this.requested = new Set();  // subscribe sent on this connection
    this.confirmed = new Set();  // ... and answered "subscribed"
    this.lastAlertId = new Map();
    this.marker = document.createElement("div");
    this.marker.className = "alert-feed";
    el.replaceChildren(this.marker);
    this.showConfirmed();
    this.socket = new RelaySocket({
      onReady: () => this.sync(),
      onMessage: (message) => this.onMessage(message),
      onDown: () => {
        this.requested.clear();
        this.confirmed.clear();
        this.showConfirmed();
      },
    });
  }

  // Subscribe to the streams newly in model.stream_ids, unsubscribe from those gone.
  sync() {
    const wanted = new Set(this.model.stream_ids);
    for (const streamId of wanted) {
      if (this.requested.has(streamId)) continue;
      const message = { type: "subscribe", clientType: "dashboard", streamId, consumes: ["alert"] };
      if (this.lastAlertId.has(streamId)) message.sinceAlertId = this.lastAlertId.get(streamId);
      this.socket.send(message);
      this.requested.add(streamId);
    }
    for (const streamId of [...this.requested]) {
      if (wanted.has(streamId)) continue;
      this.socket.send({ type: "unsubscribe", streamId });
      this.requested.delete(streamId);
      this.confirmed.delete(streamId);
    }
    this.showConfirmed();
  }

  showConfirmed() {
    this.marker.dataset.subscribed = [...this.confirmed].join(" ");
  }

  onMessage(message) {
    if (message.type === "alert") {
      this.lastAlertId.set(message.streamId, message.id);
      this.model.send_msg({ kind: "alert", alert: message });
    } else if (message.type === "alert-updated") {
      this.model.send_msg({ kind: "updated", update: message });
    } else if (message.type === "subscribed" && this.requested.has(message.streamId)) {
      this.confirmed.add(message.streamId);
      this.showConfirmed();
      this.model.send_msg({ kind: "subscribed", streamId: message.streamId });
    }
  }

  close() {
    this.socket.close();
  }
}

export function render({ model, el, view }) {
  view._vigilFeed?.close();  // a re-render drops "remove" handlers without calling them
  const feed = new Feed(model, el);
  view._vigilFeed = feed;
  model.on("change:stream_ids", () => feed.sync());
  model.on("remove", () => feed.close());
}
