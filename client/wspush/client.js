// The Client of wspush-client (docs/client.md): one connection, over
// WebSocket or SSE (fallback.js decides which), replaced when it fails.
// Everything runs on the caller's event loop; nothing here is shared
// between Client instances.

import { TransportChooser } from "./fallback.js";
import { backoffDelay, closeKind, defaults, tokenExpiry, withToken } from "./policy.js";
import { Emitter, Subscription } from "./state.js";
import { SSETransport, positions, sseBase, sseURL, streamSet } from "./transport-sse.js";
import { WSTransport } from "./transport-ws.js";
import { Upgrader } from "./upgrade.js";

/**
 * A wspush client: one WebSocket (or SSE stream), replaced when it fails.
 */
export class Client extends Emitter {
  /**
   * @param {string} url ws:// or wss:// URL of /ws
   * @param {object} [opts] see wspush.d.ts and docs/client.md
   */
  constructor(url, opts = {}) {
    super();
    this.url = url;
    this.opts = { ...defaults, ...opts };
    this._random = opts.random || Math.random;
    this._now = opts.now || Date.now;
    this._setTimeout = opts.setTimeout || ((f, ms) => setTimeout(f, ms));
    this._clearTimeout = opts.clearTimeout || ((t) => clearTimeout(t));
    this._WebSocket = opts.WebSocket || globalThis.WebSocket;
    const ES = opts.EventSource !== undefined ? opts.EventSource : globalThis.EventSource;
    const fetchFn = opts.fetch !== undefined ? opts.fetch : globalThis.fetch;
    this._sseEnv = {
      EventSource: typeof ES === "function" ? ES : null,
      fetch: typeof fetchFn === "function" && typeof ReadableStream === "function" ? fetchFn : null,
    };
    const caps = { ws: typeof this._WebSocket === "function", sse: !!(this._sseEnv.EventSource || this._sseEnv.fetch) };
    this._chooser = new TransportChooser(opts.transport || "auto", this.opts.fallbackAfter, caps);
    if (this._chooser.mode !== "sse" && !caps.ws && (this._chooser.mode === "websocket" || !caps.sse)) {
      throw new Error("wspush: no WebSocket (Node 20 needs --experimental-websocket)");
    }
    if (this._chooser.mode === "sse" && !caps.sse) throw new Error("wspush: no EventSource and no fetch for SSE");
    this._sseURL = opts.sseUrl || "";
    this._token = opts.token || "";
    this._tokenAt = this._now(); // when _token was obtained
    this._getToken = opts.getToken || null;
    /** @type {Map<string, Subscription>} */ this._subs = new Map();
    /** @type {Map<string, {resolve: Function, reject: Function, at: number, timer: any}>} */
    this._pings = new Map();
    this._tr = null; // the current transport (transport-ws.js, transport-sse.js)
    this._upgrader = new Upgrader(this); // WebSocket probes while on SSE
    this._seq = 0; // id counter
    this._attempt = 0;
    this._state = "idle";
    this._transport = ""; // the transport of the last welcome
    this._opened = false; // welcome seen on the current transport
    this._quiet = false; // the current SSE stream replaces an open one (topic change)
    this._restreamQueued = false;
    this._lastFrame = 0;
    this._liveFor = 0; // ms without a frame after which the connection is dead (0: not checked)
    this._ownPingAt = 0; // when the liveness ping in flight was sent (0: none)
    this._timer = null; // the one timer: backoff, liveness or refresh
    this._closed = false; // close() called or a final close
    this._userClosed = false; // close() called
    this._authStopped = false; // stopped by an expired token without getToken
    this._needToken = false; // call getToken before the next connect
    this._gen = 0; // connect attempts, to ignore a stale getToken answer
    this.connectionId = "";
    this.intervalMs = 0;
    this.stats = { delivered: 0, duplicates: 0, gaps: 0, gone: 0, reconnects: 0 };
    if (opts.autoConnect !== false) queueMicrotask(() => this.connect());
  }

  /** The connection state: idle, connecting, open, reconnecting or closed. */
  get state() {
    return this._state;
  }

  /** The transport of the current (or last) connection: "websocket", "sse", or "" before the first. */
  get transport() {
    return this._transport;
  }

  /**
   * Subscribes to a topic; handler(data, {topic, seq, ts}) sees the
   * topic's messages in seq order, each once.
   * @param {string} topic
   * @param {{mode?: "stream"|"latest"}|Function} [opts]
   * @param {Function} [handler]
   */
  subscribe(topic, opts, handler) {
    if (typeof opts === "function") [opts, handler] = [{}, opts];
    const mode = (opts && opts.mode) || "stream";
    if (mode !== "stream" && mode !== "latest") throw new Error(`wspush: unknown mode ${JSON.stringify(mode)}`);
    if (this._subs.has(topic)) throw new Error(`wspush: already subscribed to ${JSON.stringify(topic)}`);
    const sub = new Subscription(this, topic, mode, handler || (() => {}));
    this._subs.set(topic, sub);
    if (this._opened) {
      if (this._tr.oneWay) this._queueRestream();
      else this._sendSub(sub);
    }
    return sub;
  }

  _unsubscribe(sub) {
    if (this._subs.get(sub.topic) !== sub) return;
    this._subs.delete(sub.topic);
    if (!this._opened) return;
    if (this._tr.oneWay) this._queueRestream();
    else this._tr.send({ type: "unsub", topic: sub.topic });
  }

  _sendSub(sub) {
    sub._id = "s" + ++this._seq;
    const m = { type: "sub", topic: sub.topic, id: sub._id, ...sub._state.resume() };
    if (sub.mode === "latest") m.mode = "latest";
    this._tr.send(m);
  }

  /**
   * Sends a message object as JSON. Returns false when not connected, and
   * over SSE (one way: an "error" event with code "one_way" says so).
   * @param {object} msg
   */
  send(msg) {
    if (!this._opened) return false;
    if (this._tr.oneWay) {
      this._emit("error", { code: "one_way", reason: "send: the connection is SSE, which is one way; nothing was sent" });
      return false;
    }
    return this._tr.send(msg);
  }

  /**
   * An application ping; resolves with the round trip in ms. Rejects
   * over SSE.
   * @returns {Promise<number>}
   */
  ping() {
    return new Promise((resolve, reject) => {
      if (!this._opened) return reject(new Error("wspush: not connected"));
      if (this._tr.oneWay) return reject(new Error("wspush: ping needs WebSocket; the connection is SSE (one way)"));
      const id = "p" + ++this._seq;
      const timer = this._setTimeout(() => {
        this._pings.delete(id);
        reject(new Error("wspush: ping timeout"));
      }, this.opts.pingTimeout);
      this._pings.set(id, { resolve, reject, at: this._now(), timer });
      this._tr.send({ type: "ping", id });
    });
  }

  /**
   * Replaces the token; a client stopped by an auth close connects again.
   * @param {string} token
   */
  setToken(token) {
    this._token = token;
    this._tokenAt = this._now();
    if (this._state === "closed" && this._authStopped && !this._userClosed) {
      this._closed = false;
      this._authStopped = false;
      this._attempt = 0;
      this._connect();
    }
  }

  /**
   * Starts connecting: needed with autoConnect: false, and after a final
   * close (not after close()) when the application wants to try again.
   */
  connect() {
    if (this._state === "idle" || (this._state === "closed" && !this._userClosed)) {
      this._closed = false;
      this._authStopped = false;
      this._attempt = 0;
      this._connect();
    }
  }

  /** Closes for good: no reconnect, no further events but "state". */
  close() {
    this._userClosed = true;
    this._stop(1000, "client closed");
  }

  _stop(code, reason) {
    this._closed = true;
    this._clear();
    this._dropTransport();
    this._failPings();
    this._setState("closed", { code, reason });
  }

  _setState(state, extra) {
    if (state === this._state) return;
    const prev = this._state;
    this._state = state;
    this._emit("state", { state, prev, ...extra });
  }

  _clear() {
    if (this._timer !== null) this._clearTimeout(this._timer);
    this._timer = null;
  }

  // _dropTransport closes the current transport, silently, and any probe
  // unless the stream is only being replaced (keepProbe: a topic change).
  _dropTransport(keepProbe) {
    if (!keepProbe) this._upgrader.drop();
    const tr = this._tr;
    this._tr = null;
    this._opened = false;
    this._quiet = false;
    if (tr) tr.close(1000);
  }

  _failPings() {
    for (const [id, p] of this._pings) {
      this._clearTimeout(p.timer);
      p.reject(new Error("wspush: disconnected"));
      this._pings.delete(id);
    }
  }

  async _freshToken() {
    if (!this._getToken) return this._token;
    const t = await this._getToken();
    if (typeof t !== "string" || !t) throw new Error("getToken returned no token");
    this._token = t;
    this._tokenAt = this._now();
    return t;
  }

  _tokenUsable() {
    if (!this._token) return false;
    const exp = tokenExpiry(this._token);
    return !exp || exp - this._now() > Math.min(this.opts.tokenMargin, 1000);
  }

  _connect(quiet) {
    this._dial(!!quiet).catch((err) => {
      this._emit("error", { code: "internal", reason: String(err), error: err });
    });
  }

  async _dial(quiet) {
    if (this._closed) return;
    this._clear();
    this._dropTransport(quiet);
    if (!quiet) this._setState("connecting");
    const gen = ++this._gen;
    let token = this._token;
    if (this._getToken && (this._needToken || !this._tokenUsable())) {
      try {
        token = await this._freshToken();
        this._needToken = false;
      } catch (err) {
        if (this._closed || gen !== this._gen) return;
        this._emit("error", { code: "token", reason: String(err && err.message ? err.message : err) });
        return this._retry("overload", "token", 0);
      }
      if (this._closed || gen !== this._gen) return;
    } else if (token && !this._getToken && tokenExpiry(token) && tokenExpiry(token) <= this._now()) {
      this._authStopped = true;
      this._emit("error", { code: "token_expired", reason: "the token has expired and there is no getToken" });
      return this._stop(1008, "token expired");
    }
    const kind = quiet ? "sse" : this._chooser.next();
    let tr;
    try {
      tr = kind === "sse" ? this._openSSE(token) : new WSTransport(this._WebSocket, withToken(this.url, token), this, this._setTimeout);
    } catch (err) {
      if (kind === "websocket" && this._chooser.wsUnusable()) {
        this._emit("error", { code: "websocket", reason: `WebSocket cannot be used (${err}): using SSE` });
        return this._dial(false);
      }
      this._emit("error", { code: "url", reason: String(err) });
      return this._stop(0, "bad url");
    }
    this._tr = tr;
    this._quiet = quiet;
    this._opened = false;
    this._lastFrame = this._now();
    this._arm(this.opts.connectTimeout, () => this._dead(tr, "connect timeout"));
  }

  _openSSE(token) {
    const set = streamSet(this._subs);
    const url = sseURL(this._sseURL || sseBase(this.url), { ...set, positions: positions(this._subs, set.mode), token });
    return new SSETransport(this._sseEnv, url, this, set);
  }

  // _queueRestream replaces the SSE stream, once per turn of the event
  // loop, when the subscriptions no longer match its topics.
  _queueRestream() {
    if (this._restreamQueued) return;
    this._restreamQueued = true;
    queueMicrotask(() => {
      this._restreamQueued = false;
      const tr = this._tr;
      if (!this._opened || !tr || !tr.oneWay || this._closed) return;
      const want = streamSet(this._subs);
      if (want.mode === tr.mode && want.topics.join(",") === tr.topics.join(",")) return;
      this._connect(true);
    });
  }

  _arm(ms, fn) {
    this._clear();
    this._timer = this._setTimeout(() => {
      this._timer = null;
      fn();
    }, Math.max(0, ms));
  }

  // _dead replaces a transport that stopped answering.
  _dead(tr, why) {
    if (tr !== this._tr) return;
    tr.close(4000, why); // a code of the 4000-4999 private range
    this._emit("error", { code: "dead", reason: why });
    this.closed(tr, 1006, why, {}, true);
  }

  // closed is the transports' report of their end (and _dead's).
  closed(tr, code, reason, info, forced) {
    if (tr !== this._tr) return;
    const opened = this._opened || this._quiet;
    this._tr = null;
    this._opened = false;
    this._quiet = false;
    this._ownPingAt = 0;
    this._failPings();
    this._upgrader.drop();
    if (!forced && !opened && code === 1000) code = 1006;
    this._emit("disconnected", { code, reason, wasOpen: opened, transport: tr.kind });
    if (this._closed) return;
    this._chooser.failed(tr.kind, !opened);
    if (info.refused) {
      const fallback = this._chooser.sseUnusable();
      this._emit("error", { code: "sse_refused", reason: reason + (fallback ? ": using WebSocket only" : "") });
      if (!fallback) return this._stop(code, reason);
    }
    const kind = closeKind(code, reason, opened);
    if (kind === "final") {
      this._emit("error", { code: "closed", reason: `the server closed with ${code} ${reason}: not reconnecting` });
      return this._stop(code, reason);
    }
    if (kind === "token") {
      if (!this._getToken) {
        this._authStopped = true;
        this._emit("error", { code: "token_expired", reason: "token expired and there is no getToken" });
        return this._stop(code, reason);
      }
      this._needToken = true;
    }
    if (!opened && this._getToken) this._needToken = true; // perhaps a 401
    this._retry(kind === "token" ? "normal" : kind, reason || String(code), tr.kind === "sse" ? tr.retry : 0);
  }

  // _retry waits the backoff, and at least the server's SSE retry field.
  _retry(kind, why, floor) {
    const attempt = this._attempt++;
    const delay = Math.max(backoffDelay(kind, attempt, this.opts, this._random), floor || 0);
    this.stats.reconnects++;
    this._setState("reconnecting");
    this._emit("reconnecting", { attempt: attempt + 1, delay, kind, reason: why });
    this._arm(delay, () => this._connect());
  }

  // alive: an SSE heartbeat.
  alive(tr) {
    if (tr === this._tr) this._lastFrame = this._now();
  }

  bad(tr) {
    if (tr === this._tr) this._emit("error", { code: "bad_frame", reason: "a frame that is not JSON" });
  }

  // frame is the transports' report of a message.
  frame(tr, m) {
    if (tr !== this._tr) return;
    this._lastFrame = this._now();
    switch (m.type) {
      case "welcome":
        return this._onWelcome(m);
      case "tick":
        this._onTick(m);
        return this._emit("tick", m);
      case "msg":
        return this._onMsg(m);
      case "subscribed":
        return this._onSubscribed(m);
      case "pong":
        return this._onPong(m);
      case "error":
        return this._onError(m);
      default:
        return this._emit("message", m);
    }
  }

  _onWelcome(m) {
    const tr = this._tr;
    const quiet = this._quiet;
    this._opened = true;
    this._quiet = false;
    tr.opened = true;
    this._attempt = 0;
    this._chooser.opened(tr.kind);
    this.connectionId = m.id;
    this.intervalMs = m.interval_ms || 0;
    if (this._transport !== tr.kind) {
      const prev = this._transport;
      this._transport = tr.kind;
      this._emit("transport", { transport: tr.kind, prev });
    }
    this._setState("open");
    this._emit("welcome", m);
    if (!quiet) this._emit("connected", { id: m.id, interval_ms: this.intervalMs, transport: tr.kind });
    if (tr.oneWay) this._queueRestream(); // subscriptions made while it connected
    else for (const sub of this._subs.values()) if (sub._active) this._sendSub(sub);
    this._schedule();
    if (tr.oneWay && !this._upgrader.pending) this._upgrader.arm();
  }

  // _schedule arms the timer for whichever comes first: the liveness check
  // or the token refresh.
  _schedule() {
    if (!this._opened) return;
    const o = this.opts;
    const tr = this._tr;
    const now = this._now();
    let due = Infinity;
    let what = "";
    this._liveFor = 0;
    if (this.intervalMs > 0) this._liveFor = Math.max(3 * this.intervalMs, o.livenessFloor);
    else if (tr.oneWay && tr.heartbeats) this._liveFor = o.heartbeatTimeout;
    if (this._liveFor > 0) {
      due = this._lastFrame + this._liveFor;
      what = "live";
    } else if (tr.oneWay) {
      // EventSource with ticks off: no frame to watch, nothing to send.
    } else if (this._ownPingAt) {
      due = this._ownPingAt + o.pongTimeout;
      what = "pong";
    } else {
      due = this._lastFrame + o.pingInterval;
      what = "ping";
    }
    const exp = this._getToken ? tokenExpiry(this._token) : 0;
    if (exp) {
      const refreshAt = exp - Math.min(o.tokenMargin, Math.max(0, (exp - this._tokenAt) / 5));
      if (refreshAt < due) [due, what] = [refreshAt, "refresh"];
    }
    if (due === Infinity) return this._clear();
    this._arm(due - now, () => this._tick(tr, what));
  }

  _tick(tr, what) {
    if (tr !== this._tr || !this._opened) return;
    const now = this._now();
    const o = this.opts;
    if (what === "live" && now - this._lastFrame >= this._liveFor) {
      return this._dead(tr, `no frame for ${now - this._lastFrame} ms`);
    }
    if (what === "pong" && this._ownPingAt && now - this._ownPingAt >= o.pongTimeout) {
      return this._dead(tr, `no pong for ${now - this._ownPingAt} ms`);
    }
    if (what === "ping" && !this._ownPingAt) {
      this._ownPingAt = now;
      tr.send({ type: "ping", id: "live" });
    }
    if (what === "refresh") {
      // No in-band refresh: reconnect with a new token and resume.
      this._needToken = true;
      tr.close(1000, "token refresh");
      this._tr = null;
      this._opened = false;
      this._failPings();
      this._emit("disconnected", { code: 1000, reason: "token refresh", wasOpen: true, transport: tr.kind });
      this._attempt = 0;
      return this._connect();
    }
    this._schedule();
  }

  // _upgrade makes the probe the connection: the stream is closed and the
  // subscriptions resume over WebSocket from their positions.
  _upgrade(probe, m) {
    const old = this._tr;
    if (!this._opened || !old) return probe.close(1000);
    old.close();
    probe.rebind(this);
    this._tr = probe;
    this._opened = false;
    this._lastFrame = this._now();
    this._emit("disconnected", { code: 1000, reason: "upgrade to websocket", wasOpen: true, transport: old.kind });
    this._onWelcome(m);
  }

  _onTick(m) {
    if (!m.topics) return;
    for (const topic of Object.keys(m.topics)) {
      const sub = this._subs.get(topic);
      const v = m.topics[topic];
      if (!sub || !sub._active || sub.mode !== "latest" || !v) continue;
      this._deliver(sub, v.seq, v.data, m.due);
    }
  }

  _onMsg(m) {
    if (m.topic === "") return this._emit("broadcast", m);
    const sub = this._subs.get(m.topic);
    if (!sub || !sub._active) return;
    this._deliver(sub, m.seq, m.data, m.ts);
  }

  _deliver(sub, seq, data, ts) {
    // Before its first subscribed a subscription has no position: frames
    // of an earlier subscription to the topic (unsub, sub) are not its own.
    if (!sub._state.known) return;
    const verdict = sub._state.accept(seq, this._latest(sub));
    if (verdict === "dup") {
      this.stats.duplicates++;
      return;
    }
    if (verdict === "gap") {
      this.stats.gaps++;
      this._emit("error", {
        code: "seq_gap",
        topic: sub.topic,
        reason: `topic ${sub.topic}: seq ${seq} follows a lower seq without history_gone (protocol error)`,
        seq,
      });
    }
    this.stats.delivered++;
    try {
      sub._handler(data, { topic: sub.topic, seq, ts, epoch: sub._state.epoch });
    } catch (err) {
      this._emit("error", { code: "handler", topic: sub.topic, reason: String(err), error: err });
    }
  }

  // _latest: whether sub's messages come as latest values. A latest
  // subscription on an SSE stream in stream mode (mixed modes) gets every
  // message, and keeps a stream position so that a new stream resumes it.
  _latest(sub) {
    return sub.mode === "latest" && !(this._tr && this._tr.oneWay && this._tr.mode === "stream");
  }

  _onSubscribed(m) {
    const sub = this._subs.get(m.topic);
    if (!sub || !sub._active) return;
    const r = sub._state.subscribed(m, this._latest(sub));
    if (r.gone) {
      this.stats.gone++;
      this._emit("gone", { topic: m.topic, since: r.from.seq, epoch: r.from.epoch, newEpoch: m.epoch, seq: m.seq });
    } else if (r.resumed) {
      this._emit("resumed", { topic: m.topic, replayed: r.replayed });
    }
    // Over SSE every subscribed event answers the stream's own subscribe.
    if (m.id !== undefined || this._tr.oneWay) this._emit("subscribed", m);
  }

  _onPong(m) {
    if (m.id === "live") {
      this._ownPingAt = 0;
      return this._schedule();
    }
    const p = this._pings.get(m.id);
    if (!p) return this._emit("message", m);
    this._pings.delete(m.id);
    this._clearTimeout(p.timer);
    p.resolve(this._now() - p.at);
  }

  _onError(m) {
    const err = { code: m.code, reason: m.reason, id: m.id };
    for (const sub of this._subs.values()) {
      if (m.id !== undefined && sub._id === m.id) {
        // The sub was refused (forbidden, limit, …): it is not retried.
        err.topic = sub.topic;
        sub._active = false;
        this._subs.delete(sub.topic);
      }
    }
    this._emit("error", err);
  }
}
