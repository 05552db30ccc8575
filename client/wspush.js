// wspush-client: the JavaScript client of wspush (docs/client.md).
//
// One dependency-free ES module for browsers, Node ≥ 22 and Node 20 with
// --experimental-websocket. It keeps a connection to /ws alive (full-jitter
// exponential backoff, longer waits after overload and after a server
// drain, no reconnect after a final close), resubscribes with since+epoch
// after every reconnect, drops duplicates, and never leaves a gap silent:
// lost history is a "gone" event, a seq jump without it an "error" event
// with code "seq_gap". Protocol: docs/protocol.md.
//
// Everything runs on the caller's event loop; nothing here is shared
// between Client instances.

/** Close codes after which the client does not reconnect by itself. */
const FINAL_CODES = new Set([1002, 1003, 1007, 1008, 1009, 1010]);

/** Close codes that mean "the server is overloaded or restarting". */
const OVERLOAD_CODES = new Set([1011, 1012, 1013, 1014, 4008]);

/** Default options; every one can be overridden in new Client(url, opts). */
export const defaults = Object.freeze({
  backoffBase: 1000, // ms: attempt n waits random(0, min(cap, base·2^n))
  backoffCap: 30000, // ms
  overloadMin: 2000, // ms added after 1011-1014, 4008 and refused upgrades
  drainMin: 1000, // ms: after 1001 "server shutting down" the wait is
  drainWindow: 15000, // uniform over [drainMin, drainWindow]
  livenessFloor: 5000, // ms: dead after max(3·interval_ms, floor) without a frame
  pingInterval: 20000, // ms: own ping period when the server's ticks are off
  pongTimeout: 10000, // ms: dead when a ping is not answered within this
  connectTimeout: 10000, // ms: from the WebSocket's creation to the welcome
  tokenMargin: 30000, // ms: refresh at most this long before the token's exp
  pingTimeout: 10000, // ms: ping() rejects after this
});

/**
 * The wait before reconnect attempt `attempt` (0 for the first), in ms.
 * kind is "normal", "overload" or "drain"; random returns [0, 1).
 * @param {"normal"|"overload"|"drain"} kind
 * @param {number} attempt
 * @param {typeof defaults} o
 * @param {() => number} random
 * @returns {number}
 */
export function backoffDelay(kind, attempt, o, random) {
  if (kind === "drain") {
    return o.drainMin + random() * Math.max(0, o.drainWindow - o.drainMin);
  }
  const ceiling = Math.min(o.backoffCap, o.backoffBase * 2 ** Math.min(attempt, 30));
  const jitter = random() * ceiling;
  return kind === "overload" ? o.overloadMin + jitter : jitter;
}

/**
 * What a close means for reconnecting: "final" (do not reconnect),
 * "token" (the token expired: reconnect with a new one from getToken),
 * "drain", "overload" or "normal".
 * @param {number} code
 * @param {string} reason
 * @param {boolean} opened whether the welcome had arrived
 * @returns {"final"|"token"|"drain"|"overload"|"normal"}
 */
export function closeKind(code, reason, opened) {
  if ((code === 1008 && reason === "token expired") || code === 4401) return "token";
  if (FINAL_CODES.has(code)) return "final";
  if (code === 1001 && reason === "server shutting down") return "drain";
  if (OVERLOAD_CODES.has(code) || code === 4429 || (code >= 4500 && code <= 4599)) return "overload";
  // Other application codes (4000-4999: a backend refused the connection,
  // or disconnected the user) mean "stop" unless the application says so.
  if (code >= 4000 && code <= 4999) return "final";
  // A refused upgrade (503, 429, 401…) looks like 1006 before the welcome:
  // WebSocket APIs do not expose the HTTP status.
  if (!opened) return "overload";
  return "normal";
}

/**
 * The exp claim of a JWT in ms since the epoch, or 0 when there is none or
 * the token is not a JWT. The signature is not checked.
 * @param {string} token
 * @returns {number}
 */
export function tokenExpiry(token) {
  try {
    const part = String(token).split(".")[1];
    if (!part) return 0;
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
    const exp = JSON.parse(atob(b64)).exp;
    return typeof exp === "number" ? exp * 1000 : 0;
  } catch {
    return 0;
  }
}

/**
 * The per-topic resume state: the epoch and the last seq handed to the
 * handler. accept() decides what to do with a msg's seq.
 */
export class TopicState {
  constructor() {
    /** @type {string} */ this.epoch = "";
    /** @type {number} */ this.seq = 0;
    /** @type {boolean} */ this.known = false; // epoch and seq are meaningful
  }

  /**
   * The sub fields that resume this topic, or {} on the first subscribe.
   * @returns {{since?: number, epoch?: string}}
   */
  resume() {
    return this.known ? { since: this.seq, epoch: this.epoch } : {};
  }

  /**
   * Takes a subscribed frame. Returns {gone, resumed, replayed, from}:
   * gone when history this client had a position in was lost.
   * @param {{seq: number, epoch: string, history_gone?: boolean}} m
   * @param {boolean} [latest] latest mode
   */
  subscribed(m, latest) {
    const from = { epoch: this.epoch, seq: this.seq };
    const wasKnown = this.known;
    this.known = true;
    if (m.history_gone || !wasKnown) {
      this.epoch = m.epoch;
      // A stream goes on live after seq; latest mode's next tick carries
      // the current value, whatever its seq.
      this.seq = latest ? 0 : m.seq;
      return { gone: !!m.history_gone, resumed: false, replayed: 0, from };
    }
    if (m.epoch !== this.epoch) {
      // An epoch notice without loss (clusters): take the new epoch.
      this.epoch = m.epoch;
      this.seq = Math.min(this.seq, m.seq);
      return { gone: false, resumed: false, replayed: 0, from };
    }
    return { gone: false, resumed: true, replayed: Math.max(0, m.seq - this.seq), from };
  }

  /**
   * Classifies a msg (stream mode) or a tick value (latest mode) with this
   * seq: "dup" (seq ≤ last: drop), "next" (deliver) or "gap" (a jump with
   * no history_gone: a protocol error; deliver it too). latest mode skips
   * values by design, so gaps are "next" there.
   * @param {number} seq
   * @param {boolean} latest
   * @returns {"dup"|"next"|"gap"}
   */
  accept(seq, latest) {
    if (seq <= this.seq) return "dup";
    const gap = !latest && seq !== this.seq + 1;
    this.seq = seq;
    return gap ? "gap" : "next";
  }
}

/**
 * A subscription returned by Client.subscribe.
 */
class Subscription {
  constructor(client, topic, mode, handler) {
    this.topic = topic;
    this.mode = mode;
    this._client = client;
    this._handler = handler;
    this._state = new TopicState();
    this._active = true; // false after unsubscribe() or a refusal
    this._id = ""; // id of the sub in flight on the current connection
  }

  /** The last seq delivered and its epoch. */
  get position() {
    return { seq: this._state.seq, epoch: this._state.epoch };
  }

  /** Ends the subscription; no handler call follows. */
  unsubscribe() {
    if (!this._active) return;
    this._active = false;
    this._client._unsubscribe(this);
  }
}

/**
 * A wspush client: one WebSocket, replaced when it fails.
 */
export class Client {
  /**
   * @param {string} url ws:// or wss:// URL of /ws
   * @param {object} [opts] see wspush.d.ts and docs/client.md
   */
  constructor(url, opts = {}) {
    this.url = url;
    this.opts = { ...defaults, ...opts };
    this._random = opts.random || Math.random;
    this._now = opts.now || Date.now;
    this._setTimeout = opts.setTimeout || ((f, ms) => setTimeout(f, ms));
    this._clearTimeout = opts.clearTimeout || ((t) => clearTimeout(t));
    this._WebSocket = opts.WebSocket || globalThis.WebSocket;
    if (typeof this._WebSocket !== "function") {
      throw new Error("wspush: no WebSocket (Node 20 needs --experimental-websocket)");
    }
    this._token = opts.token || "";
    this._tokenAt = this._now(); // when _token was obtained
    this._getToken = opts.getToken || null;
    /** @type {Map<string, Set<Function>>} */ this._listeners = new Map();
    /** @type {Map<string, Subscription>} */ this._subs = new Map();
    /** @type {Map<string, {resolve: Function, reject: Function, at: number, timer: any}>} */
    this._pings = new Map();
    this._ws = null;
    this._seq = 0; // id counter
    this._attempt = 0;
    this._state = "idle";
    this._opened = false; // welcome seen on the current socket
    this._lastFrame = 0;
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

  /**
   * Adds a listener; returns a function that removes it.
   * @param {string} event
   * @param {Function} fn
   */
  on(event, fn) {
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  _emit(event, arg) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of set) {
      try {
        fn(arg);
      } catch (err) {
        if (event !== "error") this._emit("error", { code: "listener", reason: String(err), error: err });
      }
    }
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
    if (this._opened) this._sendSub(sub);
    return sub;
  }

  _unsubscribe(sub) {
    if (this._subs.get(sub.topic) !== sub) return;
    this._subs.delete(sub.topic);
    if (this._opened) this._raw({ type: "unsub", topic: sub.topic });
  }

  _sendSub(sub) {
    sub._id = "s" + ++this._seq;
    const m = { type: "sub", topic: sub.topic, id: sub._id, ...sub._state.resume() };
    if (sub.mode === "latest") m.mode = "latest";
    this._raw(m);
  }

  /**
   * Sends a message object as JSON. Returns false when not connected.
   * @param {object} msg
   */
  send(msg) {
    if (!this._opened) return false;
    return this._raw(msg);
  }

  _raw(msg) {
    try {
      this._ws.send(JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * An application ping; resolves with the round trip in ms.
   * @returns {Promise<number>}
   */
  ping() {
    return new Promise((resolve, reject) => {
      if (!this._opened) return reject(new Error("wspush: not connected"));
      const id = "p" + ++this._seq;
      const timer = this._setTimeout(() => {
        this._pings.delete(id);
        reject(new Error("wspush: ping timeout"));
      }, this.opts.pingTimeout);
      this._pings.set(id, { resolve, reject, at: this._now(), timer });
      this._raw({ type: "ping", id });
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
    const ws = this._ws;
    this._ws = null;
    this._opened = false;
    if (ws) {
      this._detach(ws);
      try {
        ws.close(1000);
      } catch {
        /* already closing */
      }
    }
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

  _connect() {
    this._dial().catch((err) => {
      this._emit("error", { code: "internal", reason: String(err), error: err });
    });
  }

  async _dial() {
    if (this._closed) return;
    this._clear();
    if (this._ws) {
      const old = this._ws;
      this._ws = null;
      this._opened = false;
      this._detach(old);
      try {
        old.close(1000);
      } catch {
        /* already closing */
      }
    }
    this._setState("connecting");
    const gen = ++this._gen;
    let token = this._token;
    if (this._getToken && (this._needToken || !this._tokenUsable())) {
      try {
        token = await this._freshToken();
        this._needToken = false;
      } catch (err) {
        if (this._closed || gen !== this._gen) return;
        this._emit("error", { code: "token", reason: String(err && err.message ? err.message : err) });
        return this._retry("overload", "token");
      }
      if (this._closed || gen !== this._gen) return;
    } else if (token && !this._getToken && tokenExpiry(token) && tokenExpiry(token) <= this._now()) {
      this._authStopped = true;
      this._emit("error", { code: "token_expired", reason: "the token has expired and there is no getToken" });
      return this._stop(1008, "token expired");
    }
    let url = this.url;
    if (token) url += (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
    let ws;
    try {
      ws = new this._WebSocket(url);
    } catch (err) {
      this._emit("error", { code: "url", reason: String(err) });
      return this._stop(0, "bad url");
    }
    this._ws = ws;
    this._opened = false;
    this._lastFrame = this._now();
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev) => this._onMessage(ws, ev.data);
    ws.onclose = (ev) => this._onClose(ws, ev.code, ev.reason);
    // A close event normally follows an error; Node 20's WebSocket sends
    // none after a refused upgrade, so an error is a close if no close
    // event comes soon.
    ws.onerror = () => {
      this._setTimeout(() => this._onClose(ws, 1006, "connection failed"), this._opened ? 1000 : 0);
    };
    this._arm(this.opts.connectTimeout, () => this._dead(ws, "connect timeout"));
  }

  _detach(ws) {
    ws.onmessage = ws.onclose = ws.onerror = null;
  }

  _arm(ms, fn) {
    this._clear();
    this._timer = this._setTimeout(() => {
      this._timer = null;
      fn();
    }, Math.max(0, ms));
  }

  // _dead replaces a socket that stopped answering.
  _dead(ws, why) {
    if (ws !== this._ws) return;
    this._detach(ws);
    try {
      ws.close(4000, why); // a code of the 4000-4999 private range
    } catch {
      /* ignore */
    }
    this._emit("error", { code: "dead", reason: why });
    this._onClose(ws, 1006, why, true);
  }

  _onClose(ws, code, reason, forced) {
    if (ws !== this._ws) return;
    this._detach(ws);
    const opened = this._opened;
    this._ws = null;
    this._opened = false;
    this._ownPingAt = 0;
    this._failPings();
    if (!forced && !opened && code === 1000) code = 1006;
    this._emit("disconnected", { code, reason, wasOpen: opened });
    if (this._closed) return;
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
    this._retry(kind === "token" ? "normal" : kind, reason || String(code));
  }

  _retry(kind, why) {
    const attempt = this._attempt++;
    const delay = backoffDelay(kind, attempt, this.opts, this._random);
    this.stats.reconnects++;
    this._setState("reconnecting");
    this._emit("reconnecting", { attempt: attempt + 1, delay, kind, reason: why });
    this._arm(delay, () => this._connect());
  }

  _onMessage(ws, data) {
    if (ws !== this._ws) return;
    this._lastFrame = this._now();
    let m;
    try {
      m = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
    } catch {
      return this._emit("error", { code: "bad_frame", reason: "a frame that is not JSON" });
    }
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
    this._opened = true;
    this._attempt = 0;
    this.connectionId = m.id;
    this.intervalMs = m.interval_ms || 0;
    this._setState("open");
    this._emit("welcome", m);
    this._emit("connected", { id: m.id, interval_ms: this.intervalMs });
    for (const sub of this._subs.values()) if (sub._active) this._sendSub(sub);
    this._schedule();
  }

  // _schedule arms the timer for whichever comes first: the liveness check
  // or the token refresh.
  _schedule() {
    if (!this._opened) return;
    const o = this.opts;
    const now = this._now();
    let due;
    let what;
    if (this.intervalMs > 0) {
      due = this._lastFrame + Math.max(3 * this.intervalMs, o.livenessFloor);
      what = "live";
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
    const ws = this._ws;
    this._arm(due - now, () => this._tick(ws, what));
  }

  _tick(ws, what) {
    if (ws !== this._ws || !this._opened) return;
    const now = this._now();
    const o = this.opts;
    if (what === "live" && now - this._lastFrame >= Math.max(3 * this.intervalMs, o.livenessFloor)) {
      return this._dead(ws, `no frame for ${now - this._lastFrame} ms`);
    }
    if (what === "pong" && this._ownPingAt && now - this._ownPingAt >= o.pongTimeout) {
      return this._dead(ws, `no pong for ${now - this._ownPingAt} ms`);
    }
    if (what === "ping" && !this._ownPingAt) {
      this._ownPingAt = now;
      this._raw({ type: "ping", id: "live" });
    }
    if (what === "refresh") {
      // No in-band refresh: reconnect with a new token and resume.
      this._needToken = true;
      this._detach(ws);
      try {
        ws.close(1000, "token refresh");
      } catch {
        /* ignore */
      }
      this._ws = null;
      this._opened = false;
      this._failPings();
      this._emit("disconnected", { code: 1000, reason: "token refresh", wasOpen: true });
      this._attempt = 0;
      return this._connect();
    }
    this._schedule();
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
    const verdict = sub._state.accept(seq, sub.mode === "latest");
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

  _onSubscribed(m) {
    const sub = this._subs.get(m.topic);
    if (!sub || !sub._active) return;
    const r = sub._state.subscribed(m, sub.mode === "latest");
    if (r.gone) {
      this.stats.gone++;
      this._emit("gone", { topic: m.topic, since: r.from.seq, epoch: r.from.epoch, newEpoch: m.epoch, seq: m.seq });
    } else if (r.resumed) {
      this._emit("resumed", { topic: m.topic, replayed: r.replayed });
    }
    if (m.id !== undefined) this._emit("subscribed", m);
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
