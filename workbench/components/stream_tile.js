// One live tile of the Live page: the stream's video, device name, status badge,
// fps and end-to-end delay, and its latest alert drawn where it was seen.
//
// The tile subscribes to the relay itself (RelaySocket, from relay_socket.js which
// StreamTile prepends to this module) with binary frames, and draws them on a
// canvas: frames never pass through the Python session.  The root element carries
// data-stream-id, data-status and data-frames (frames drawn) for tests and tools.

const ALERT_MS = 5000;
const textDecoder = new TextDecoder();

// A binary frame: 4-byte big-endian header length, JSON header, image bytes.
function decodeFrame(buffer) {
  const length = new DataView(buffer).getUint32(0);
  const header = JSON.parse(textDecoder.decode(new Uint8Array(buffer, 4, length)));
  return { header, image: new Uint8Array(buffer, 4 + length) };
}

function element(tag, className, parent) {
  const node = document.createElement(tag);
  node.className = className;
  parent.appendChild(node);
  return node;
}

class Tile {
  constructor(model, el) {
    this.model = model;
    this.streamId = model.stream_id;
    this.frames = 0;
    this.framesAtTick = 0;
    this.tickAt = performance.now();
    this.delays = [];
    this.pending = null;
    this.drawing = false;
    this.closed = false;

    el.replaceChildren();
    const root = element("div", "tile", el);
    root.dataset.streamId = this.streamId;
    root.dataset.frames = "0";
    root.title = "Click to enlarge or to go back to the grid";
    root.addEventListener("click", () => model.send_msg({ type: "toggle-enlarged" }));
    this.root = root;
    const frame = element("div", "frame", root);
    this.canvas = element("canvas", "picture", frame);
    this.canvas.width = 640;
    this.canvas.height = 480;
    this.context = this.canvas.getContext("2d");
    this.alerts = element("div", "alerts", frame);
    const caption = element("div", "caption", root);
    this.caption = caption;
    this.name = element("span", "name", caption);
    this.name.textContent = model.device_name;
    this.badge = element("span", "badge", caption);
    this.stats = element("div", "stats", root);
    this.stats.textContent = "no frames yet";
    this.setStatus("connecting");
    this.placePicture();
    // The tile's size changes with the layout and the window; the labels' places (in pixels) follow.
    this.resizes = new ResizeObserver(() => this.placePicture());
    this.resizes.observe(this.canvas);

    this.ticker = setInterval(() => this.tick(), 1000);
    this.socket = new RelaySocket({
      onReady: () => this.socket.send({
        type: "subscribe",
        clientType: "dashboard",
        streamId: this.streamId,
        consumes: ["video-frame", "alert", "stream-status"],
        frameFormat: "binary",
      }),
      onMessage: (message) => this.onMessage(message),
      onFrame: (buffer) => this.onFrame(buffer),
      onDown: (reason) => this.setStatus(reason),
    });
  }

  setStatus(status) {
    this.root.dataset.status = status;
    this.badge.textContent = status;
    this.badge.className = `badge badge-${status.split(":")[0].replace(/\s+/g, "-")}`;
  }

  onMessage(message) {
    if (message.streamId !== this.streamId) return;
    if (message.type === "stream-status") {
      this.setStatus(message.status);
    } else if (message.type === "alert") {
      this.showAlert(message);
    } else if (message.type === "error") {
      this.stats.textContent = message.message;
    }
  }

  // The newest frame wins: frames that arrive while one is decoded replace each other.
  onFrame(buffer) {
    this.pending = decodeFrame(buffer);
    if (!this.drawing) this.drawPending();
  }

  async drawPending() {
    this.drawing = true;
    while (this.pending && !this.closed) {
      const { header, image } = this.pending;
      this.pending = null;
      let bitmap;
      try {
        bitmap = await createImageBitmap(new Blob([image], { type: header.contentType || "image/jpeg" }));
      } catch (error) {
        continue;  // a frame that is not a decodable image is skipped, the next one may be
      }
      if (this.canvas.width !== bitmap.width || this.canvas.height !== bitmap.height) {
        this.canvas.width = bitmap.width;
        this.canvas.height = bitmap.height;
        this.placePicture();
      }
      this.context.drawImage(bitmap, 0, 0);
      bitmap.close();
      this.frames += 1;
      this.root.dataset.frames = String(this.frames);
      if (typeof header.timestamp === "number") this.delays.push(Date.now() - header.timestamp);
    }
    this.drawing = false;
  }

  tick() {
    const now = performance.now();
    const fps = ((this.frames - this.framesAtTick) * 1000) / (now - this.tickAt);
    this.framesAtTick = this.frames;
    this.tickAt = now;
    if (this.frames === 0) return;
    const delays = this.delays.sort((a, b) => a - b);
    const delay = delays.length ? `${delays[Math.floor(delays.length / 2)]} ms` : "–";
    this.stats.textContent = `${fps.toFixed(1)} fps · ${delay}`;
    this.delays = [];
  }

  // The canvas letterboxes the picture into the 4:3 tile (object-fit: contain), so the
  // alerts' layer is laid over the picture's displayed rectangle, not the tile: an
  // alert's normalised coordinates are the picture's.  The rectangle is in percent
  // of the tile, which depend only on the two aspect ratios, so it holds at any size.
  placePicture() {
    const tile = this.canvas.clientWidth && this.canvas.clientHeight
      ? this.canvas.clientWidth / this.canvas.clientHeight : 4 / 3;
    const picture = this.canvas.width / this.canvas.height;
    const width = picture >= tile ? 1 : picture / tile;
    const height = picture >= tile ? tile / picture : 1;
    Object.assign(this.alerts.style, {
      left: `${((1 - width) / 2) * 100}%`, top: `${((1 - height) / 2) * 100}%`,
      width: `${width * 100}%`, height: `${height * 100}%`,
    });
    this.placeLabels();
  }

  // A label sits above its box, but inside the tile and below the caption (the stream's
  // name and status): moved down and sideways as far as needed, never out of the tile.
  placeLabels() {
    const tile = this.root.getBoundingClientRect();
    const floor = this.caption.getBoundingClientRect().bottom;
    for (const label of this.alerts.querySelectorAll(".alert-box .alert-label, .alert-point .alert-label")) {
      label.style.top = label.style.left = "";
      label.style.maxWidth = `${tile.width}px`;
      const marker = label.parentElement, box = marker.getBoundingClientRect();
      const own = label.getBoundingClientRect();
      const top = Math.min(Math.max(box.top - own.height, floor), tile.bottom - own.height);
      const left = Math.min(Math.max(box.left, tile.left), tile.right - own.width);
      // The label's top and left count from inside the marker's border.
      label.style.top = `${top - box.top - marker.clientTop}px`;
      label.style.left = `${left - box.left - marker.clientLeft}px`;
    }
  }

  // The latest alert replaces the one before.  x, y are the top-left corner of the
  // box when width and height are given, else a point; all in [0, 1] of the picture.
  showAlert(alert) {
    const metadata = alert.metadata || {};
    const location = metadata.location;
    this.alerts.replaceChildren();
    const marker = element("div", `alert alert-${alert.severity}`, this.alerts);
    marker.dataset.alertId = alert.id;
    marker.style.setProperty("--colour", this.model.severity_colours[alert.severity] || "#e15759");
    const label = element("span", "alert-label", marker);
    label.textContent = `${alert.severity}: ${alert.message}`;
    if (location && typeof location.x === "number" && typeof location.y === "number") {
      const box = typeof location.width === "number" && typeof location.height === "number";
      marker.classList.add(box ? "alert-box" : "alert-point");
      marker.style.left = `${location.x * 100}%`;
      marker.style.top = `${location.y * 100}%`;
      if (box) {
        marker.style.width = `${location.width * 100}%`;
        marker.style.height = `${location.height * 100}%`;
      }
      this.placeLabels();
    } else {
      marker.classList.add("alert-banner");
    }
    setTimeout(() => marker.remove(), ALERT_MS);
  }

  close() {
    this.closed = true;
    clearInterval(this.ticker);
    this.resizes.disconnect();
    this.socket.close();
  }
}

export function render({ model, el, view }) {
  // A re-render of the same view drops the "remove" handlers without calling them:
  // close the previous render's tile (and its socket) here.
  view._vigilTile?.close();
  const tile = new Tile(model, el);
  view._vigilTile = tile;
  model.on("change:device_name", () => { tile.name.textContent = model.device_name; });
  model.on("remove", () => tile.close());
}
