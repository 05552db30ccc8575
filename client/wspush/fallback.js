// Which transport the wspush client uses for its next attempt
// (docs/client.md "Transports"). One TransportChooser per Client; it only
// counts, it never touches a connection.
//
// transport "websocket" and "sse" are fixed. "auto" (the default) uses
// WebSocket, and SSE when:
//   - there is no WebSocket, or its constructor threw (for good);
//   - fallbackAfter WebSocket attempts in a row failed before their
//     welcome (a proxy that refuses upgrades looks like this). When an
//     SSE attempt then fails before its welcome too, the next attempt is
//     WebSocket again, so that a server that is simply down is tried on
//     both in turn.
// A WebSocket welcome resets the count. /sse refusing outright (400, 403,
// 404, 405, 501, not an event stream) turns SSE off for good. While on
// SSE the client probes WebSocket after upgradeAfter ms (doubling while
// the probes fail, up to 16×) and moves back when a probe gets its welcome.

/** @typedef {"websocket"|"sse"} Kind */

export const TRANSPORTS = Object.freeze(["auto", "websocket", "sse"]);

export class TransportChooser {
  /**
   * @param {"auto"|Kind} mode
   * @param {number} fallbackAfter
   * @param {{ws: boolean, sse: boolean}} caps what this runtime has
   */
  constructor(mode, fallbackAfter, caps) {
    if (!TRANSPORTS.includes(mode)) throw new Error(`wspush: transport must be "auto", "websocket" or "sse", not ${JSON.stringify(mode)}`);
    this.mode = mode;
    this.fallbackAfter = Math.max(1, Math.floor(fallbackAfter) || 1);
    this.ws = caps.ws; // WebSocket usable
    this.sse = caps.sse; // SSE usable
    this.wsFails = 0; // WebSocket attempts in a row that failed before their welcome
    this.probeFails = 0; // upgrade probes in a row that failed
  }

  /** @returns {Kind} the transport of the next attempt */
  next() {
    if (this.mode !== "auto") return this.mode;
    if (!this.ws) return "sse";
    if (!this.sse) return "websocket";
    return this.wsFails >= this.fallbackAfter ? "sse" : "websocket";
  }

  /**
   * An attempt or a connection of kind ended.
   * @param {Kind} kind
   * @param {boolean} beforeWelcome
   */
  failed(kind, beforeWelcome) {
    if (this.mode !== "auto" || !beforeWelcome) return;
    if (kind === "websocket") this.wsFails++;
    else this.wsFails = this.fallbackAfter - 1; // WebSocket once more, then SSE again
  }

  /** @param {Kind} kind a welcome arrived over kind */
  opened(kind) {
    if (kind === "websocket") {
      this.wsFails = 0;
      this.probeFails = 0;
    }
  }

  /** WebSocket cannot be used at all; true when SSE takes over. */
  wsUnusable() {
    if (this.mode !== "auto" || !this.sse) return false;
    this.ws = false;
    return true;
  }

  /** /sse refused the stream outright; true when WebSocket takes over. */
  sseUnusable() {
    if (this.mode !== "auto" || !this.ws) return false;
    this.sse = false;
    this.wsFails = 0;
    return true;
  }

  /** Whether a client on SSE should probe WebSocket. */
  get canUpgrade() {
    return this.mode === "auto" && this.ws;
  }

  /**
   * The wait before the next upgrade probe.
   * @param {number} base upgradeAfter
   */
  probeDelay(base) {
    return base * 2 ** Math.min(this.probeFails, 4);
  }
}
