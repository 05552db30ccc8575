// The client over /sse's transient refusals: since an EventSource gives up
// for good on any status but 200, the server answers a request that asks
// for an event stream and is refused for a passing reason (overload, the
// per-IP cap, the drain) with a 200 stream of a retry field and one close
// event (docs/protocol.md "SSE"). The client must treat that as a
// transient refusal: back off and try again, never "sse_refused".
import { test } from "node:test";
import assert from "node:assert/strict";
import { Client } from "../wspush.js";

function fakeClock() {
  let now = 1_000_000;
  let id = 0;
  const timers = new Map();
  return {
    now: () => now,
    setTimeout: (fn, ms) => (timers.set(++id, { at: now + ms, fn }), id),
    clearTimeout: (t) => timers.delete(t),
    advance(ms) {
      const end = now + ms;
      for (;;) {
        let next = null;
        for (const [k, t] of timers) if (t.at <= end && (!next || t.at < next[1].at)) next = [k, t];
        if (!next) break;
        timers.delete(next[0]);
        now = next[1].at;
        next[1].fn();
      }
      now = end;
    },
  };
}

// A fetch whose 200 event streams the test writes; it records the Accept
// header each request sent.
function fakeFetch() {
  const all = [];
  const f = async (url, init) => {
    let ctl;
    const body = new ReadableStream({ start: (c) => void (ctl = c) });
    const rec = { url: new URL(url), accept: init.headers.Accept, push: (s) => ctl.enqueue(new TextEncoder().encode(s)), end: () => ctl.close() };
    init.signal.addEventListener("abort", () => {
      try {
        ctl.error(new Error("aborted"));
      } catch {
        /* closed */
      }
    });
    all.push(rec);
    return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
  };
  f.all = all;
  return f;
}

const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

const refusal = (retry, code, reason) =>
  `retry: ${retry}\n\nevent: close\ndata: ${JSON.stringify({ type: "close", code, reason })}\n\n`;

test("SSE refusal streams (1013, 4429, 1001 before the welcome) back off with the server's retry as a floor, and the stream opens later", async () => {
  const clock = fakeClock();
  const fetch = fakeFetch();
  const events = [];
  const c = new Client("ws://x/ws", {
    EventSource: null,
    fetch,
    transport: "sse",
    now: clock.now,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => 0,
    autoConnect: false,
  });
  for (const e of ["reconnecting", "error", "connected"]) c.on(e, (ev) => events.push([e, ev]));
  const of = (name) => events.filter((e) => e[0] === name).map((e) => e[1]);
  c.subscribe("t", () => {});
  c.connect();
  await flush();
  const cases = [
    [1013, "server is at its connection limit (1)", "overload", 2500],
    [4429, "too many connections from your address", "overload", 4100],
    [1001, "server shutting down", "drain", 3300],
  ];
  for (const [i, [code, reason, kind, retry]] of cases.entries()) {
    const r = fetch.all[i];
    assert.equal(r.accept, "text/event-stream", "the fetch reader asks for an event stream");
    r.push(refusal(retry, code, reason));
    r.end();
    await flush();
    const w = of("reconnecting").at(-1);
    assert.equal(w.kind, kind, `close ${code}`);
    assert.ok(w.delay >= retry, `close ${code}: waits ${w.delay} ms, at least the server's retry ${retry}`);
    assert.notEqual(c.state, "closed");
    clock.advance(w.delay);
    await flush();
  }
  assert.equal(of("error").filter((e) => e.code === "sse_refused" || e.code === "closed").length, 0);
  const r = fetch.all[cases.length];
  r.push('retry: 1000\n\nevent: welcome\ndata: {"type":"welcome","id":"c1","interval_ms":0}\n\n');
  await flush();
  assert.equal(c.state, "open");
  c.close();
});
