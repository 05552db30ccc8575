// The WebSocket transport of the wspush client: one WebSocket to /ws. It
// reports to its handler like the SSE transport (transport-sse.js):
// h.frame(tr, m), h.closed(tr, code, reason, {}) once, h.bad(tr); nothing
// after close() or detach().

export class WSTransport {
  /**
   * Throws what the WebSocket constructor throws (a bad URL, a blocked
   * scheme).
   * @param {new (url: string) => WebSocket} WS
   * @param {string} url
   * @param {object} h the handler
   * @param {(f: Function, ms: number) => unknown} setTimeout
   */
  constructor(WS, url, h, setTimeout) {
    this.kind = "websocket";
    this.oneWay = false;
    this.opened = false; // set by the client at the welcome
    this._h = h;
    const ws = (this._ws = new WS(url));
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev) => this._message(ev.data);
    ws.onclose = (ev) => this._end(ev.code, ev.reason);
    // A close event normally follows an error; Node 20's WebSocket sends
    // none after a refused upgrade, so an error is a close if no close
    // event comes soon.
    ws.onerror = () => {
      setTimeout(() => this._end(1006, "connection failed"), this.opened ? 1000 : 0);
    };
  }

  _message(data) {
    if (!this._h) return;
    let m;
    try {
      m = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
    } catch {
      return this._h.bad(this);
    }
    this._h.frame(this, m);
  }

  _end(code, reason) {
    const h = this._h;
    if (!h) return;
    this.detach();
    h.closed(this, code, reason, {});
  }

  /** Sends msg as JSON; false when the socket refuses it. */
  send(msg) {
    try {
      this._ws.send(JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }

  /** Closes the socket; nothing is reported after it. */
  close(code = 1000, reason) {
    this.detach();
    try {
      if (reason === undefined) this._ws.close(code);
      else this._ws.close(code, reason);
    } catch {
      /* already closing */
    }
  }

  /** Reports to h from now on (a probe that becomes the connection). */
  rebind(h) {
    this._h = h;
  }

  /** Stops reporting without closing. */
  detach() {
    this._h = null;
    const ws = this._ws;
    ws.onmessage = ws.onclose = ws.onerror = null;
  }
}
