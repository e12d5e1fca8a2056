// The page's ear for alerts: one WebSocket to the relay (RelaySocket, from
// relay_socket.js which AlertFeed prepends), subscribed to the alerts of every
// stream in model.stream_ids, handing each alert to the Python session with
// model.send_msg.  After a disconnect it resubscribes with sinceAlertId, so the
// relay replays what the page missed.  It draws nothing.

class Feed {
  constructor(model) {
    this.model = model;
    this.subscribed = new Set();
    this.lastAlertId = new Map();
    this.socket = new RelaySocket({
      onReady: () => { this.subscribed.clear(); this.sync(); },
      onMessage: (message) => this.onMessage(message),
      onDown: () => this.subscribed.clear(),
    });
  }

  // Subscribe to the streams newly in model.stream_ids, unsubscribe from those gone.
  sync() {
    const wanted = new Set(this.model.stream_ids);
    for (const streamId of wanted) {
      if (this.subscribed.has(streamId)) continue;
      const message = { type: "subscribe", clientType: "dashboard", streamId, consumes: ["alert"] };
      if (this.lastAlertId.has(streamId)) message.sinceAlertId = this.lastAlertId.get(streamId);
      this.socket.send(message);
      this.subscribed.add(streamId);
    }
    for (const streamId of [...this.subscribed]) {
      if (wanted.has(streamId)) continue;
      this.socket.send({ type: "unsubscribe", streamId });
      this.subscribed.delete(streamId);
    }
  }

  onMessage(message) {
    if (message.type === "alert") {
      this.lastAlertId.set(message.streamId, message.id);
      this.model.send_msg({ kind: "alert", alert: message });
    } else if (message.type === "subscribed") {
      this.model.send_msg({ kind: "subscribed", streamId: message.streamId });
    }
  }

  close() {
    this.socket.close();
  }
}

export function render({ model, el, view }) {
  view._vigilFeed?.close();  // a re-render drops "remove" handlers without calling them
  const feed = new Feed(model);
  view._vigilFeed = feed;
  model.on("change:stream_ids", () => feed.sync());
  model.on("remove", () => feed.close());
}
