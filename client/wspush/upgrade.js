// The upgrade probe of the wspush client (transport "auto"): while the
// client is on SSE, a WebSocket is tried now and then beside the stream
// (after upgradeAfter ms, doubling while the probes fail, up to 16×); its
// welcome moves the client back to WebSocket (Client._upgrade). One
// Upgrader per Client: at most one probe and one timer at a time.

import { withToken } from "./policy.js";
import { WSTransport } from "./transport-ws.js";

export class Upgrader {
  /** @param {import("./client.js").Client} client */
  constructor(client) {
    this.c = client;
    this.probe = null; // the WebSocket being tried
    this.timer = null; // the wait before the probe, then its connect timeout
  }

  /** Whether a probe is waiting or in flight. */
  get pending() {
    return this.probe !== null || this.timer !== null;
  }

  /** Schedules the next probe (nothing when WebSocket cannot be used). */
  arm() {
    this.drop();
    const c = this.c;
    if (!c._chooser.canUpgrade || c._closed) return;
    this.timer = c._setTimeout(() => {
      this.timer = null;
      this._start();
    }, c._chooser.probeDelay(c.opts.upgradeAfter));
  }

  _start() {
    const c = this.c;
    if (!c._opened || !c._tr || !c._tr.oneWay || c._closed) return;
    try {
      this.probe = new WSTransport(c._WebSocket, withToken(c.url, c._token), this, c._setTimeout);
    } catch {
      c._chooser.wsUnusable();
      return;
    }
    this.timer = c._setTimeout(() => {
      this.timer = null;
      this._failed();
    }, c.opts.connectTimeout);
  }

  _failed() {
    this.c._chooser.probeFails++;
    this.arm();
  }

  /** Ends the probe and its timer, silently. */
  drop() {
    if (this.timer !== null) this.c._clearTimeout(this.timer);
    this.timer = null;
    const p = this.probe;
    this.probe = null;
    if (p) p.close(1000);
  }

  // The probe's handler (transport-ws.js).
  frame(tr, m) {
    if (tr !== this.probe || m.type !== "welcome") return;
    if (this.timer !== null) this.c._clearTimeout(this.timer);
    this.timer = null;
    this.probe = null;
    this.c._upgrade(tr, m);
  }

  closed(tr) {
    if (tr !== this.probe) return;
    this.probe = null;
    if (this.timer !== null) this.c._clearTimeout(this.timer);
    this.timer = null;
    this._failed();
  }

  alive() {}

  bad() {}
}
