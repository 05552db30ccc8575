// Unit tests of the SSE fallback: the event-stream parser, the transport
// choice, and the client over an injected EventSource (or fetch) beside an
// injected WebSocket, with a fake clock. No server needed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Client, SSEParser, TransportChooser, defaults } from "../wspush.js";

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

// Fake WebSockets; with fail set, every new one fails before its welcome.
function fakeSockets() {
  const all = [];
  class FakeWS {
    constructor(url) {
      if (FakeWS.throws) throw new SyntaxError("blocked");
      this.url = url;
      this.sent = [];
      this.closed = null;
      all.push(this);
    }
    send(s) {
      this.sent.push(JSON.parse(s));
    }
    close(code, reason) {
      this.closed = { code, reason };
    }
    recv(m) {
      this.onmessage?.({ data: JSON.stringify(m) });
    }
    drop(code, reason = "") {
      this.onclose?.({ code, reason });
    }
  }
  return { FakeWS, all, last: () => all[all.length - 1] };
}

// Fake EventSources: recv(m, id) delivers m as the event of its type.
function fakeSources() {
  const all = [];
  class FakeES {
    constructor(url) {
      this.url = url;
      this.u = new URL(url);
      this.listeners = {};
      this.closed = false;
      all.push(this);
    }
    addEventListener(type, fn) {
      (this.listeners[type] ||= []).push(fn);
    }
    close() {
      this.closed = true;
    }
    recv(m, id = "") {
      for (const fn of this.listeners[m.type] || []) fn({ type: m.type, data: JSON.stringify(m), lastEventId: id });
    }
    fail() {
      for (const fn of this.listeners.error || []) fn({ type: "error" });
    }
  }
  return { FakeES, all, last: () => all[all.length - 1] };
}

function setup(opts = {}) {
  const clock = fakeClock();
  const ws = fakeSockets();
  const es = fakeSources();
  const events = [];
  const c = new Client("ws://x/ws", {
    WebSocket: ws.FakeWS,
    EventSource: es.FakeES,
    now: clock.now,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => 0.5,
    autoConnect: false,
    ...opts,
  });
  for (const e of ["connected", "disconnected", "reconnecting", "resumed", "gone", "error", "transport", "subscribed"]) {
    c.on(e, (ev) => events.push([e, ev]));
  }
  const of = (name) => events.filter((e) => e[0] === name).map((e) => e[1]);
  // wait: the backoff the client just chose, and not more
  const wait = async () => {
    clock.advance(of("reconnecting").at(-1).delay);
    await flush();
  };
  return { c, clock, ws, es, events, of, wait };
}

const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

// openSSE makes the client fail twice over WebSocket and open over SSE.
async function openSSE(env, intervalMs = 1000) {
  const { c, ws, es, wait } = env;
  c.connect();
  await flush();
  ws.last().drop(1006);
  await wait();
  ws.last().drop(1006);
  await wait();
  assert.equal(ws.all.length, 2, "two WebSocket attempts before SSE");
  assert.equal(es.all.length, 1, "then SSE");
  const src = es.last();
  src.recv({ type: "welcome", id: "c1", interval_ms: intervalMs });
  return src;
}

test("SSEParser: fields, comments, retry, every line ending, any chunking", () => {
  const text =
    "\ufeffretry: 2500\n\n: heartbeat\n\nevent: msg\ndata: {\"a\":\ndata: 1}\nid: t:E:1\n\n" +
    "event: tick\r\ndata:{\"seq\":2}\r\n\r\n" +
    "data: plain\rid\r\r" +
    "event: none\n\n" + // no data: nothing dispatched
    "bogus: x\ndata: last\n\n";
  const want = [
    ["retry", 2500],
    ["comment"],
    ["event", "msg", '{"a":\n1}', "t:E:1"],
    ["event", "tick", '{"seq":2}', "t:E:1"],
    ["event", "message", "plain", ""],
    ["event", "message", "last", ""],
  ];
  for (const size of [1, 2, 3, 7, text.length]) {
    const got = [];
    const p = new SSEParser({
      event: (t, d, id) => got.push(["event", t, d, id]),
      comment: () => got.push(["comment"]),
      retry: (ms) => got.push(["retry", ms]),
    });
    for (let i = 0; i < text.length; i += size) p.push(text.slice(i, i + size));
    assert.deepEqual(got, want, `chunks of ${size}`);
  }
  const p = new SSEParser({ event() {}, comment() {}, retry() {} });
  assert.throws(() => p.push("data: " + "x".repeat(1 << 20)), /line of more than/);
});

test("TransportChooser: auto falls back after N failures, alternates while both fail, fixed modes do not", () => {
  const ch = new TransportChooser("auto", 2, { ws: true, sse: true });
  assert.equal(ch.next(), "websocket");
  ch.failed("websocket", true);
  assert.equal(ch.next(), "websocket");
  ch.failed("websocket", false); // it was open: not a failure to connect
  assert.equal(ch.next(), "websocket");
  ch.failed("websocket", true);
  assert.equal(ch.next(), "sse");
  ch.failed("sse", false); // an open stream dropped: stay
  assert.equal(ch.next(), "sse");
  ch.failed("sse", true);
  assert.equal(ch.next(), "websocket");
  ch.failed("websocket", true);
  assert.equal(ch.next(), "sse");
  ch.opened("websocket");
  assert.equal(ch.next(), "websocket");
  assert.equal(ch.canUpgrade, true);
  assert.equal(ch.probeDelay(1000), 1000);
  ch.probeFails = 9;
  assert.equal(ch.probeDelay(1000), 16000);
  assert.equal(ch.sseUnusable(), true);
  for (let i = 0; i < 5; i++) ch.failed("websocket", true);
  assert.equal(ch.next(), "websocket");
  const fixed = new TransportChooser("websocket", 2, { ws: true, sse: true });
  for (let i = 0; i < 5; i++) fixed.failed("websocket", true);
  assert.equal(fixed.next(), "websocket");
  assert.equal(fixed.wsUnusable(), false);
  assert.equal(new TransportChooser("auto", 2, { ws: false, sse: true }).next(), "sse");
  assert.equal(new TransportChooser("sse", 2, { ws: true, sse: true }).canUpgrade, false);
  assert.throws(() => new TransportChooser("longpoll", 2, { ws: true, sse: true }), /transport must be/);
  assert.equal(defaults.fallbackAfter, 2);
});

test("fallback: WebSocket fails twice, SSE receives with the same API; send and ping refuse clearly", async () => {
  const env = setup();
  const { c, es, of } = env;
  const got = [];
  c.subscribe("t", (d, info) => got.push([info.seq, d]));
  c.subscribe("p", { mode: "latest" }, (d, info) => got.push(["p", info.seq, d]));
  const src = await openSSE(env);
  assert.equal(src.u.origin + src.u.pathname, "http://x/sse");
  assert.equal(src.u.searchParams.get("topics"), "p,t");
  assert.equal(src.u.searchParams.get("mode"), null); // mixed modes: a stream
  assert.equal(src.u.searchParams.get("since"), null);
  assert.equal(c.state, "open");
  assert.equal(c.transport, "sse");
  assert.deepEqual(of("transport"), [{ transport: "sse", prev: "" }]);
  assert.equal(of("connected")[0].transport, "sse");
  src.recv({ type: "subscribed", topic: "t", mode: "stream", seq: 3, epoch: "E" }, "t:E:3");
  src.recv({ type: "subscribed", topic: "p", mode: "stream", seq: 9, epoch: "P" }, "t:E:3,p:P:9");
  src.recv({ type: "msg", topic: "t", seq: 4, ts: 1, data: "a" }, "t:E:4,p:P:9");
  src.recv({ type: "msg", topic: "p", seq: 10, ts: 1, data: "x" }, "t:E:4,p:P:10");
  src.recv({ type: "msg", topic: "t", seq: 4, ts: 1, data: "a" }, "t:E:4,p:P:10"); // duplicate
  src.recv({ type: "msg", topic: "", seq: 0, ts: 1, data: "all" });
  assert.deepEqual(got, [[4, "a"], ["p", 10, "x"]]);
  assert.equal(c.stats.duplicates, 1);
  assert.equal(of("subscribed").length, 2);
  assert.equal(c.send({ type: "ping" }), false);
  assert.equal(of("error").at(-1).code, "one_way");
  await assert.rejects(c.ping(), /SSE \(one way\)/);
  c.close();
  assert.equal(src.closed, true);
});

test("SSE: a cut resumes with since= positions, nothing lost or repeated; history_gone is gone", async () => {
  const env = setup();
  const { c, clock, es, ws, of } = env;
  const got = [];
  c.subscribe("a", (d, info) => got.push(["a", info.seq]));
  c.subscribe("b", (d, info) => got.push(["b", info.seq]));
  const src = await openSSE(env);
  src.recv({ type: "subscribed", topic: "a", mode: "stream", seq: 0, epoch: "EA" });
  src.recv({ type: "subscribed", topic: "b", mode: "stream", seq: 5, epoch: "EB" });
  src.recv({ type: "msg", topic: "a", seq: 1, ts: 1, data: 1 });
  src.recv({ type: "msg", topic: "b", seq: 6, ts: 1, data: 1 });
  src.fail(); // the network path is cut
  assert.equal(src.closed, true, "EventSource's own reconnect is not used");
  assert.equal(of("disconnected").at(-1).transport, "sse");
  assert.equal(c.state, "reconnecting");
  await env.wait();
  assert.equal(ws.all.length, 2, "an open SSE stream that drops is reopened over SSE");
  const again = es.last();
  assert.notEqual(again, src);
  assert.equal(again.u.searchParams.get("since"), "a:EA:1,b:EB:6");
  again.recv({ type: "welcome", id: "c2", interval_ms: 1000 });
  again.recv({ type: "subscribed", topic: "a", mode: "stream", seq: 3, epoch: "EA" });
  again.recv({ type: "msg", topic: "a", seq: 2, ts: 1, data: 1 });
  again.recv({ type: "msg", topic: "a", seq: 3, ts: 1, data: 1 });
  again.recv({ type: "subscribed", topic: "b", mode: "stream", seq: 2, epoch: "EC", history_gone: true });
  again.recv({ type: "msg", topic: "b", seq: 3, ts: 1, data: 1 });
  assert.deepEqual(got, [["a", 1], ["b", 6], ["a", 2], ["a", 3], ["b", 3]]);
  assert.deepEqual(of("resumed"), [{ topic: "a", replayed: 2 }]);
  assert.deepEqual(of("gone"), [{ topic: "b", since: 6, epoch: "EB", newEpoch: "EC", seq: 2 }]);
  assert.equal(of("connected").length, 2);
  c.close();
});

test("SSE: subscribe and unsubscribe reopen the stream with the new topics and every position", async () => {
  const env = setup();
  const { c, es, of } = env;
  const got = [];
  c.subscribe("a", (d, info) => got.push(["a", info.seq]));
  const src = await openSSE(env);
  src.recv({ type: "subscribed", topic: "a", mode: "stream", seq: 7, epoch: "EA" });
  src.recv({ type: "msg", topic: "a", seq: 8, ts: 1, data: 1 });
  const sb = c.subscribe("b", (d, info) => got.push(["b", info.seq]));
  c.subscribe("c", (d, info) => got.push(["c", info.seq]));
  await flush();
  assert.equal(es.all.length, 2, "two subscribes, one new stream");
  assert.equal(src.closed, true);
  const s2 = es.last();
  assert.equal(s2.u.searchParams.get("topics"), "a,b,c");
  assert.equal(s2.u.searchParams.get("since"), "a:EA:8");
  assert.equal(c.state, "open");
  s2.recv({ type: "welcome", id: "c2", interval_ms: 1000 });
  s2.recv({ type: "subscribed", topic: "a", mode: "stream", seq: 9, epoch: "EA" });
  s2.recv({ type: "msg", topic: "a", seq: 9, ts: 1, data: 1 });
  s2.recv({ type: "subscribed", topic: "b", mode: "stream", seq: 4, epoch: "EB" });
  s2.recv({ type: "subscribed", topic: "c", mode: "stream", seq: 0, epoch: "EC" });
  s2.recv({ type: "msg", topic: "b", seq: 5, ts: 1, data: 1 });
  sb.unsubscribe();
  await flush();
  const s3 = es.last();
  assert.equal(s3.u.searchParams.get("topics"), "a,c");
  assert.equal(s3.u.searchParams.get("since"), "a:EA:9,c:EC:0");
  s3.recv({ type: "welcome", id: "c3", interval_ms: 1000 });
  s3.recv({ type: "msg", topic: "b", seq: 6, ts: 1, data: 1 }); // not ours any more
  assert.deepEqual(got, [["a", 8], ["a", 9], ["b", 5]]);
  assert.equal(of("connected").length, 1, "a topic change is not a reconnect");
  assert.equal(of("disconnected").length, 2, "only the two WebSocket failures");
  // every subscription latest: a latest stream, no positions
  const env2 = setup();
  env2.c.subscribe("p", { mode: "latest" }, () => {});
  const l = await openSSE(env2);
  assert.equal(l.u.searchParams.get("mode"), "latest");
  env2.c.close();
  c.close();
});

test("SSE: the server's close event is a close (drain backoff); liveness from ticks", async () => {
  const env = setup({ livenessFloor: 2000 });
  const { c, clock, es, of } = env;
  const src = await openSSE(env);
  src.recv({ type: "close", code: 1001, reason: "server shutting down" });
  assert.equal(of("reconnecting").at(-1).kind, "drain");
  assert.equal(of("disconnected").at(-1).code, 1001);
  await env.wait();
  const s2 = es.last();
  s2.recv({ type: "welcome", id: "c2", interval_ms: 1000 });
  clock.advance(2999);
  s2.recv({ type: "tick", seq: 1, due: 0 });
  clock.advance(2999);
  assert.equal(of("error").filter((e) => e.code === "dead").length, 0);
  clock.advance(1);
  assert.equal(of("error").filter((e) => e.code === "dead").length, 1);
  assert.equal(s2.closed, true);
  c.close();
});

test("transport choice: forced sse, no WebSocket, a constructor that throws, forced websocket", async () => {
  const forced = setup({ transport: "sse" });
  forced.c.connect();
  await flush();
  assert.equal(forced.ws.all.length, 0);
  assert.equal(forced.es.all.length, 1);
  forced.c.close();

  const none = setup({ WebSocket: null });
  globalThis.WebSocket === undefined || (none.c._chooser.ws = false); // Node 22 has a global one
  none.c.connect();
  await flush();
  assert.equal(none.es.all.length, 1);
  none.c.close();

  const throws = setup();
  throws.ws.FakeWS.throws = true;
  throws.c.connect();
  await flush();
  assert.equal(throws.es.all.length, 1);
  assert.equal(throws.of("error")[0].code, "websocket");
  throws.c.close();

  const wsOnly = setup({ transport: "websocket" });
  wsOnly.c.connect();
  await flush();
  for (let i = 0; i < 6; i++) {
    wsOnly.ws.last().drop(1006);
    await wsOnly.wait();
  }
  assert.equal(wsOnly.es.all.length, 0);
  assert.equal(wsOnly.ws.all.length, 7);
  wsOnly.c.close();
  assert.throws(() => new Client("ws://x/ws", { transport: "sse", EventSource: null, fetch: null, WebSocket: function () {} }), /no EventSource/);
});

test("upgrade: on SSE the client probes WebSocket after upgradeAfter (doubling) and moves over with resume", async () => {
  const env = setup({ upgradeAfter: 10_000 });
  const { c, clock, ws, es, of } = env;
  const got = [];
  c.subscribe("t", (d, info) => got.push(info.seq));
  const src = await openSSE(env, 0); // ticks off: EventSource has nothing to watch
  src.recv({ type: "subscribed", topic: "t", mode: "stream", seq: 0, epoch: "E" });
  src.recv({ type: "msg", topic: "t", seq: 1, ts: 1, data: 1 });
  clock.advance(9_999);
  assert.equal(ws.all.length, 2);
  clock.advance(1);
  assert.equal(ws.all.length, 3, "a probe after upgradeAfter");
  ws.last().drop(1006); // the probe fails: the stream is untouched
  assert.equal(src.closed, false);
  assert.equal(c.transport, "sse");
  clock.advance(19_999);
  assert.equal(ws.all.length, 3);
  clock.advance(1);
  assert.equal(ws.all.length, 4, "the next probe after twice the wait");
  src.recv({ type: "msg", topic: "t", seq: 2, ts: 1, data: 1 });
  const probe = ws.last();
  probe.recv({ type: "welcome", id: "w1", interval_ms: 1000 });
  assert.equal(src.closed, true);
  assert.equal(c.transport, "websocket");
  assert.deepEqual(of("transport").map((e) => e.transport), ["sse", "websocket"]);
  assert.equal(of("disconnected").at(-1).reason, "upgrade to websocket");
  assert.deepEqual(probe.sent[0], { type: "sub", topic: "t", id: probe.sent[0].id, since: 2, epoch: "E" });
  probe.recv({ type: "subscribed", topic: "t", mode: "stream", seq: 3, epoch: "E", id: probe.sent[0].id });
  probe.recv({ type: "msg", topic: "t", seq: 3, ts: 1, data: 1 });
  assert.deepEqual(got, [1, 2, 3]);
  assert.equal(c.send({ type: "ping", id: "x" }), true);
  assert.equal(c._upgrader.pending, false, "no probes on WebSocket");
  c.close();
});

// A fetch whose responses the test writes.
function fakeFetch() {
  const all = [];
  const f = async (url, init) => {
    if (f.status) return new Response(f.body || "", { status: f.status, headers: { "content-type": "text/plain" } });
    let ctl;
    const body = new ReadableStream({ start: (c) => void (ctl = c) });
    const rec = { url: new URL(url), aborted: false, push: (s) => ctl.enqueue(new TextEncoder().encode(s)), end: () => ctl.close() };
    init.signal.addEventListener("abort", () => {
      rec.aborted = true;
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

test("fetch reader (no EventSource): heartbeats are liveness, retry is a floor of the wait, refusals turn SSE off", async () => {
  const fetch = fakeFetch();
  const env = setup({ EventSource: null, fetch, transport: "sse", heartbeatTimeout: 5000, random: () => 0 });
  const { c, clock, of } = env;
  c.subscribe("t", () => {});
  c.connect();
  await flush();
  const r = fetch.all[0];
  r.push('retry: 3210\n\nevent: welcome\ndata: {"type":"welcome","id":"c1","interval_ms":0}\n\n');
  await flush();
  assert.equal(c.state, "open");
  assert.equal(c.transport, "sse");
  clock.advance(4000);
  r.push(":\n\n"); // the server's heartbeat
  await flush();
  clock.advance(4999);
  assert.equal(of("error").filter((e) => e.code === "dead").length, 0);
  clock.advance(1);
  assert.equal(of("error").filter((e) => e.code === "dead").length, 1);
  assert.equal(r.aborted, true);
  assert.equal(of("reconnecting").at(-1).delay, 3210, "random 0 backoff, the server's retry as the floor");
  await env.wait();
  const r2 = fetch.all[1];
  r2.end(); // the server closed the stream before the welcome
  await flush();
  assert.equal(of("reconnecting").at(-1).kind, "overload");
  // /sse refused outright: with transport "sse" that is final
  fetch.status = 404;
  fetch.body = "404 page not found";
  await env.wait();
  assert.equal(c.state, "closed");
  assert.match(of("error").at(-1).reason, /404/);
  assert.equal(of("error").at(-1).code, "sse_refused");

  // in auto, a refusal sends the client back to WebSocket for good
  const env2 = setup({ EventSource: null, fetch });
  env2.c.connect();
  await flush();
  for (let i = 0; i < 3; i++) {
    if (env2.c.transport !== "sse" && env2.ws.last()) env2.ws.last().drop(1006);
    await env2.wait();
  }
  assert.equal(env2.of("error").filter((e) => e.code === "sse_refused").length, 1);
  const before = env2.ws.all.length;
  for (let i = 0; i < 4; i++) {
    env2.ws.last().drop(1006);
    await env2.wait();
  }
  assert.equal(env2.ws.all.length, before + 4, "WebSocket only after /sse refused");
  env2.c.close();
});

test("SSE with mixed modes: a latest subscription gets every message and is resumed by position", async () => {
  const env = setup();
  const { c, es, of } = env;
  const got = [];
  c.subscribe("s", () => {});
  c.subscribe("p", { mode: "latest" }, (d, info) => got.push(info.seq));
  const src = await openSSE(env);
  src.recv({ type: "subscribed", topic: "p", mode: "stream", seq: 4, epoch: "P" });
  src.recv({ type: "msg", topic: "p", seq: 5, ts: 1, data: 1 });
  src.recv({ type: "msg", topic: "p", seq: 6, ts: 1, data: 1 });
  src.fail();
  await env.wait();
  const again = es.last();
  assert.equal(again.u.searchParams.get("since"), "p:P:6");
  again.recv({ type: "welcome", id: "c2", interval_ms: 1000 });
  again.recv({ type: "subscribed", topic: "p", mode: "stream", seq: 8, epoch: "P" });
  again.recv({ type: "msg", topic: "p", seq: 7, ts: 1, data: 1 });
  again.recv({ type: "msg", topic: "p", seq: 8, ts: 1, data: 1 });
  assert.deepEqual(got, [5, 6, 7, 8]);
  assert.deepEqual(of("error"), []);
  const big = new SSEParser({ event() {}, comment() {}, retry() {} });
  assert.throws(() => {
    for (let i = 0; i < 20; i++) big.push("data: " + "x".repeat(60_000) + "\n");
  }, /an event of more than/);
  c.close();
});
