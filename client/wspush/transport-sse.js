// The SSE transport of the wspush client: GET /sse (docs/protocol.md
// "SSE") read by EventSource where there is one, else by fetch. It is one
// way: send() returns false, and the topic set is fixed per stream (the
// client opens a new stream, with since= positions, when it changes).
//
// A transport reports to its handler h, with itself as the first argument:
//   h.frame(tr, m)                 a message (the same JSON as over WebSocket)
//   h.closed(tr, code, reason, info) once, when it ended by itself; info.refused:
//                                  /sse refused the stream outright (not a transient failure)
//   h.alive(tr)                    bytes that are not a message (a heartbeat comment)
//   h.bad(tr)                      data that is not JSON
// and reports nothing after close() or detach().

import { fetchEventSource, nativeEventSource } from "./sse-reader.js";

/** HTTP statuses after which /sse is not tried again ("auto" stays on WebSocket). */
const REFUSED = new Set([400, 403, 404, 405, 406, 415, 431, 501]);

/**
 * The /sse URL that goes with a /ws URL: ws→http, wss→https, a trailing
 * /ws replaced by /sse; other query parameters kept.
 * @param {string} wsURL
 * @returns {string}
 */
export function sseBase(wsURL) {
  const u = new URL(wsURL, globalThis.location ? globalThis.location.href : undefined);
  if (u.protocol === "ws:") u.protocol = "http:";
  else if (u.protocol === "wss:") u.protocol = "https:";
  u.pathname = u.pathname.replace(/\/ws\/?$/, "").replace(/\/$/, "") + "/sse";
  u.hash = "";
  return u.toString();
}

/**
 * A stream URL: topics, mode, the positions to resume from (since=, as in
 * an event id: topic:epoch:seq,…) and the token (?token=: EventSource
 * cannot set headers).
 * @param {string} base
 * @param {{topics: string[], mode: string, positions: {topic: string, epoch: string, seq: number}[], token: string}} s
 */
export function sseURL(base, s) {
  const u = new URL(base);
  if (s.topics.length) u.searchParams.set("topics", s.topics.join(","));
  if (s.mode === "latest") u.searchParams.set("mode", "latest");
  if (s.positions.length) u.searchParams.set("since", s.positions.map((p) => `${p.topic}:${p.epoch}:${p.seq}`).join(","));
  if (s.token) u.searchParams.set("token", s.token);
  return u.toString();
}

/**
 * The topics and mode of a stream for these subscriptions: mode latest
 * when every one is latest, else stream (latest ones then get every
 * message).
 * @param {Map<string, {topic: string, mode: string, _active: boolean}>} subs
 */
export function streamSet(subs) {
  const active = [...subs.values()].filter((s) => s._active);
  const topics = active.map((s) => s.topic).sort();
  const mode = active.length > 0 && active.every((s) => s.mode === "latest") ? "latest" : "stream";
  return { topics, mode };
}

/**
 * The since= positions of a stream in stream mode: every topic that has
 * one (latest subscriptions too: on such a stream they get every message).
 * @param {Map<string, {topic: string, mode: string, _active: boolean, _state: import("./state.js").TopicState}>} subs
 * @param {string} mode the stream's
 */
export function positions(subs, mode) {
  const ps = [];
  if (mode !== "stream") return ps;
  for (const sub of subs.values()) {
    const s = sub._state;
    if (sub._active && s.known && s.epoch) ps.push({ topic: sub.topic, epoch: s.epoch, seq: s.seq });
  }
  return ps;
}

export class SSETransport {
  /**
   * @param {{EventSource?: Function, fetch?: Function}} env
   * @param {string} url a stream URL (sseURL)
   * @param {object} h the handler (above)
   * @param {{topics: string[], mode: string}} set the stream's topics and mode
   */
  constructor(env, url, h, set) {
    this.kind = "sse";
    this.oneWay = true;
    this.topics = set.topics;
    this.mode = set.mode;
    this.heartbeats = !env.EventSource; // fetch sees the heartbeat comments, EventSource hides them
    this.retry = 0; // the server's retry field, when seen (fetch only)
    this.opened = false;
    this._h = h;
    const sink = {
      event: (type, data) => this._event(type, data),
      comment: () => this._h && this._h.alive(this),
      retry: (ms) => (this.retry = ms),
      failed: (status, reason) => this._failed(status, reason),
    };
    this._src = env.EventSource ? nativeEventSource(env.EventSource, url, sink) : fetchEventSource(env.fetch, url, sink);
  }

  _event(type, data) {
    if (!this._h) return;
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      return this._h.bad(this);
    }
    if (type === "close" || (m && m.type === "close")) {
      // The server closes the connection right after this event.
      return this._end(typeof m.code === "number" ? m.code : 1006, typeof m.reason === "string" ? m.reason : "");
    }
    this._h.frame(this, m);
  }

  _failed(status, reason) {
    if (status === 429 || status === 503) return this._end(1013, `/sse: ${reason}`);
    if (REFUSED.has(status)) return this._end(1006, `/sse: ${reason}`, { refused: true, status });
    this._end(1006, status > 0 ? `/sse: ${reason}` : reason);
  }

  _end(code, reason, info = {}) {
    const h = this._h;
    if (!h) return;
    this.close();
    h.closed(this, code, reason, info);
  }

  /** SSE is one way: nothing can be sent. */
  send() {
    return false;
  }

  /** Ends the stream; nothing is reported after it. */
  close() {
    this._h = null;
    this._src.close();
  }

  /** Stops reporting without closing. */
  detach() {
    this._h = null;
  }
}
