// Reading a text/event-stream: the parser (the WHATWG "event stream
// interpretation"), a reader on fetch for runtimes without EventSource
// (Node 20), and an adapter that gives a browser EventSource the same
// shape. Both call the same sink:
//
//   event(type, data, lastEventId)  an event with data
//   comment()                       a comment line (the server's heartbeat; fetch only)
//   retry(ms)                       a retry field (fetch only: EventSource keeps it to itself)
//   failed(status, reason)          the stream could not start (status: the HTTP status,
//                                   0 when there was no answer, -1 when no status is known)
//                                   or ended (status -1)
//
// and stop calling it after close(). Each runs on the caller's event loop.

/** The event types wspush sends (docs/protocol.md "SSE"). */
export const EVENT_TYPES = Object.freeze(["welcome", "tick", "subscribed", "unsubscribed", "msg", "presence", "error", "close", "message"]);

/** A line or an event longer than this ends the stream: the buffers are bounded. */
export const MAX_LINE = 1 << 20;

/** Parses event-stream text pushed in chunks of any size. */
export class SSEParser {
  /** @param {{event: Function, comment: Function, retry: Function}} sink */
  constructor(sink) {
    this.sink = sink;
    this.buf = ""; // an unfinished line
    this.skipLF = false; // the last chunk ended in CR: a leading LF belongs to it
    this.first = true; // a BOM may start the stream
    this.type = "";
    this.data = [];
    this.size = 0; // characters in data
    this.id = "";
  }

  /**
   * Takes the next decoded chunk; throws when a line passes MAX_LINE.
   * @param {string} text
   */
  push(text) {
    let s = this.buf + text;
    this.buf = "";
    if (this.first && s.length > 0) {
      this.first = false;
      if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
    }
    let start = 0;
    if (this.skipLF && s.length > 0) {
      this.skipLF = false;
      if (s.charCodeAt(0) === 10) start = 1;
    }
    for (let i = start; i < s.length; i++) {
      const ch = s.charCodeAt(i);
      if (ch !== 10 && ch !== 13) continue;
      this._line(s.slice(start, i));
      if (ch === 13) {
        if (i + 1 === s.length) this.skipLF = true;
        else if (s.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    this.buf = s.slice(start);
    if (this.buf.length > MAX_LINE) throw new Error(`sse: a line of more than ${MAX_LINE} characters`);
  }

  _line(line) {
    if (line === "") return this._dispatch();
    if (line.charCodeAt(0) === 58) return this.sink.comment(); // ":"
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    switch (name) {
      case "event":
        this.type = value;
        break;
      case "data":
        this.size += value.length + 1;
        if (this.size > MAX_LINE) throw new Error(`sse: an event of more than ${MAX_LINE} characters`);
        this.data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.id = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.sink.retry(Number(value));
        break;
    }
  }

  _dispatch() {
    const type = this.type || "message";
    this.type = "";
    if (this.data.length === 0) return;
    const data = this.data.join("\n");
    this.data = [];
    this.size = 0;
    this.sink.event(type, data, this.id);
  }
}

/**
 * Opens url with fetch and feeds the body to an SSEParser.
 * @param {typeof fetch} fetchFn
 * @param {string} url
 * @param {object} sink see the top of this file
 * @returns {{close(): void}}
 */
export function fetchEventSource(fetchFn, url, sink) {
  const ac = new AbortController();
  let closed = false;
  const call = (f, ...args) => {
    if (!closed) f(...args);
  };
  const parser = new SSEParser({
    event: (...a) => call(sink.event, ...a),
    comment: () => call(sink.comment),
    retry: (ms) => call(sink.retry, ms),
  });
  const fail = (status, reason) => {
    if (closed) return;
    closed = true;
    ac.abort();
    sink.failed(status, reason);
  };
  (async () => {
    let r;
    try {
      r = await fetchFn(url, { headers: { Accept: "text/event-stream" }, cache: "no-store", signal: ac.signal });
    } catch (err) {
      return fail(0, String(err && err.message ? err.message : err));
    }
    const type = (r.headers.get("content-type") || "").toLowerCase();
    if (r.status !== 200 || !type.startsWith("text/event-stream") || !r.body) {
      const body = await readSome(r, 512);
      return fail(r.status === 200 ? 415 : r.status, `${r.status} ${body}`.trim());
    }
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (closed) return;
        if (done) break;
        parser.push(dec.decode(value, { stream: true }));
      }
      fail(-1, "stream ended");
    } catch (err) {
      fail(-1, String(err && err.message ? err.message : err));
    }
  })();
  return {
    close() {
      closed = true;
      ac.abort();
    },
  };
}

// readSome returns at most max characters of a response body.
async function readSome(r, max) {
  try {
    if (!r.body) return "";
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let s = "";
    while (s.length < max) {
      const { done, value } = await reader.read();
      if (done) break;
      s += dec.decode(value, { stream: true });
    }
    reader.cancel().catch(() => {});
    return s.slice(0, max).trim();
  } catch {
    return "";
  }
}

/**
 * Opens url with an EventSource constructor (the browser's, or one
 * injected). Its own reconnect is not used: the first error ends the
 * stream, and the client's backoff decides when to open another.
 * @param {new (url: string) => EventSource} ES
 * @param {string} url
 * @param {object} sink see the top of this file
 * @returns {{close(): void}}
 */
export function nativeEventSource(ES, url, sink) {
  const es = new ES(url);
  let closed = false;
  const close = () => {
    closed = true;
    try {
      es.close();
    } catch {
      /* ignore */
    }
  };
  const onEvent = (e) => {
    if (closed) return;
    // "error" is both the server's error event (a MessageEvent with data)
    // and EventSource's own failure (an Event without).
    if (e.type === "error" && typeof e.data !== "string") {
      close();
      return sink.failed(-1, "EventSource error");
    }
    sink.event(e.type, e.data, e.lastEventId || "");
  };
  for (const t of EVENT_TYPES) es.addEventListener(t, onEvent);
  return { close };
}
