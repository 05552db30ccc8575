// Pure unit tests: backoff, close classification, token expiry, dedupe and
// seq gaps, liveness and reconnect decisions, with an injected WebSocket,
// random source and clock. No server needed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Client, TopicState, backoffDelay, closeKind, defaults, tokenExpiry } from "../wspush.js";

// A fake clock: timers run when advance() passes their time.
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
    pending: () => timers.size,
  };
}

// A fake WebSocket recording what the client sends.
function fakeSockets() {
  const all = [];
  class FakeWS {
    constructor(url) {
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
    // helpers for the test
    recv(m) {
      this.onmessage?.({ data: JSON.stringify(m) });
    }
    drop(code, reason = "") {
      this.onclose?.({ code, reason });
    }
  }
  return { FakeWS, all, last: () => all[all.length - 1] };
}

function setup(opts = {}) {
  const clock = fakeClock();
  const ws = fakeSockets();
  const events = [];
  const c = new Client("ws://x/ws", {
    WebSocket: ws.FakeWS,
    now: clock.now,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => 0.5,
    autoConnect: false,
    ...opts,
  });
  for (const e of ["connected", "disconnected", "reconnecting", "resumed", "gone", "error", "state"]) {
    c.on(e, (ev) => events.push([e, ev]));
  }
  return { c, clock, ws, events, of: (name) => events.filter((e) => e[0] === name).map((e) => e[1]) };
}

const flush = () => new Promise((r) => setImmediate(r));

test("full-jitter backoff: random(0, min(cap, base·2^attempt))", () => {
  const o = { ...defaults, backoffBase: 100, backoffCap: 1000 };
  assert.equal(backoffDelay("normal", 0, o, () => 0.999999) < 100, true);
  assert.equal(backoffDelay("normal", 3, o, () => 0.5), 400);
  assert.equal(backoffDelay("normal", 10, o, () => 0.5), 500); // capped
  assert.equal(backoffDelay("normal", 1000, o, () => 0.5), 500); // no overflow
  assert.equal(backoffDelay("normal", 2, o, () => 0), 0);
  assert.equal(backoffDelay("overload", 0, o, () => 0), o.overloadMin);
  assert.equal(backoffDelay("overload", 0, o, () => 0.5), o.overloadMin + 50);
  assert.equal(backoffDelay("drain", 0, o, () => 0), o.drainMin);
  assert.equal(backoffDelay("drain", 7, o, () => 0.5), o.drainMin + (o.drainWindow - o.drainMin) / 2);
});

test("close codes: final, token, drain, overload, normal", () => {
  for (const c of [1002, 1003, 1007, 1009, 1010]) assert.equal(closeKind(c, "", true), "final");
  assert.equal(closeKind(1008, "too many bad messages", true), "final");
  assert.equal(closeKind(1008, "rate limit", true), "final");
  assert.equal(closeKind(1008, "token expired", true), "token");
  assert.equal(closeKind(1001, "server shutting down", true), "drain");
  assert.equal(closeKind(1001, "idle timeout", true), "normal");
  for (const c of [1011, 1012, 1013, 1014, 4008]) assert.equal(closeKind(c, "", true), "overload");
  assert.equal(closeKind(1006, "", true), "normal");
  assert.equal(closeKind(1006, "", false), "overload"); // a refused upgrade
  // application codes (connect hooks, the server API's disconnect)
  assert.equal(closeKind(4401, "unauthorized", false), "token");
  assert.equal(closeKind(4403, "forbidden", false), "final");
  assert.equal(closeKind(4000, "", true), "final");
  assert.equal(closeKind(4429, "", false), "overload");
  for (const c of [4502, 4503, 4504]) assert.equal(closeKind(c, "", false), "overload");
});

test("tokenExpiry decodes exp without checking the signature", () => {
  const payload = Buffer.from(JSON.stringify({ sub: "a", exp: 1234567890 })).toString("base64url");
  assert.equal(tokenExpiry(`h.${payload}.sig`), 1234567890000);
  assert.equal(tokenExpiry("not a jwt"), 0);
  assert.equal(tokenExpiry("a.!!!.c"), 0);
  assert.equal(tokenExpiry(`h.${Buffer.from("{}").toString("base64url")}.s`), 0);
});

test("TopicState: duplicates dropped, gaps reported, resume fields", () => {
  const s = new TopicState();
  assert.deepEqual(s.resume(), {});
  assert.deepEqual(s.subscribed({ seq: 3, epoch: "e1" }), { gone: false, resumed: false, replayed: 0, from: { epoch: "", seq: 0 } });
  assert.equal(s.accept(3, false), "dup");
  assert.equal(s.accept(4, false), "next");
  assert.equal(s.accept(4, false), "dup");
  assert.equal(s.accept(2, false), "dup");
  assert.equal(s.accept(6, false), "gap");
  assert.equal(s.seq, 6);
  assert.deepEqual(s.resume(), { since: 6, epoch: "e1" });
  // a resume that is served
  assert.deepEqual(s.subscribed({ seq: 9, epoch: "e1" }).replayed, 3);
  // history gone: a new epoch, live from its seq
  const r = s.subscribed({ seq: 2, epoch: "e2", history_gone: true });
  assert.equal(r.gone, true);
  assert.deepEqual(r.from, { epoch: "e1", seq: 6 });
  assert.deepEqual(s.resume(), { since: 2, epoch: "e2" });
  // latest mode skips values by design and takes the current value
  const l = new TopicState();
  l.subscribed({ seq: 5, epoch: "e" }, true);
  assert.equal(l.accept(5, true), "next");
  assert.equal(l.accept(9, true), "next");
  assert.equal(l.accept(9, true), "dup");
});

test("client: subscribe, dedupe, gap error, resume after a drop", async () => {
  const { c, clock, ws, of } = setup();
  const got = [];
  c.subscribe("t", { mode: "stream" }, (data, info) => got.push([info.seq, data]));
  c.connect();
  await flush();
  const a = ws.last();
  a.recv({ type: "welcome", id: "c1", interval_ms: 1000 });
  assert.deepEqual(a.sent, [{ type: "sub", topic: "t", id: a.sent[0].id }]);
  a.recv({ type: "subscribed", topic: "t", mode: "stream", seq: 0, epoch: "E", id: a.sent[0].id });
  a.recv({ type: "msg", topic: "t", seq: 1, ts: 1, data: "a" });
  a.recv({ type: "msg", topic: "t", seq: 1, ts: 1, data: "a" }); // duplicate
  a.recv({ type: "msg", topic: "t", seq: 2, ts: 1, data: "b" });
  a.recv({ type: "msg", topic: "t", seq: 4, ts: 1, data: "d" }); // a jump: protocol error
  assert.deepEqual(got, [[1, "a"], [2, "b"], [4, "d"]]);
  assert.equal(c.stats.duplicates, 1);
  assert.equal(of("error").filter((e) => e.code === "seq_gap").length, 1);

  a.drop(1006);
  const rec = of("reconnecting");
  assert.equal(rec.length, 1);
  assert.equal(rec[0].attempt, 1);
  assert.equal(rec[0].delay, 500); // random 0.5 · base 1000 · 2^0
  clock.advance(499);
  assert.equal(ws.all.length, 1);
  clock.advance(1);
  await flush();
  const b = ws.last();
  assert.equal(ws.all.length, 2);
  b.recv({ type: "welcome", id: "c2", interval_ms: 1000 });
  assert.deepEqual(b.sent[0], { type: "sub", topic: "t", id: b.sent[0].id, since: 4, epoch: "E" });
  b.recv({ type: "subscribed", topic: "t", mode: "stream", seq: 6, epoch: "E", id: b.sent[0].id });
  assert.deepEqual(of("resumed"), [{ topic: "t", replayed: 2 }]);
  b.recv({ type: "msg", topic: "t", seq: 5, ts: 1, data: "e" });
  b.recv({ type: "msg", topic: "t", seq: 6, ts: 1, data: "f" });
  assert.deepEqual(got.slice(3), [[5, "e"], [6, "f"]]);
  // the next drop: attempt counter was reset by the welcome
  b.drop(1006);
  assert.equal(of("reconnecting")[1].attempt, 1);
  c.close();
  assert.equal(c.state, "closed");
});

test("client: history_gone is a gone event", async () => {
  const { c, ws, of } = setup();
  c.subscribe("t", () => {});
  c.connect();
  await flush();
  const a = ws.last();
  a.recv({ type: "welcome", id: "c1", interval_ms: 0 });
  a.recv({ type: "subscribed", topic: "t", mode: "stream", seq: 7, epoch: "E", id: a.sent[0].id });
  a.recv({ type: "msg", topic: "t", seq: 8, ts: 1, data: 1 });
  a.drop(1006);
  c._connect();
  await flush();
  const b = ws.last();
  b.recv({ type: "welcome", id: "c1", interval_ms: 0 });
  b.recv({ type: "subscribed", topic: "t", mode: "stream", seq: 3, epoch: "F", history_gone: true, id: b.sent[0].id });
  assert.deepEqual(of("gone"), [{ topic: "t", since: 8, epoch: "E", newEpoch: "F", seq: 3 }]);
  c.close();
});

test("client: final closes stop, drains spread, overload waits longer", async () => {
  const { c, ws, of, clock } = setup({ random: () => 0 });
  c.connect();
  await flush();
  ws.last().recv({ type: "welcome", id: "c1", interval_ms: 1000 });
  ws.last().drop(1001, "server shutting down");
  assert.equal(of("reconnecting")[0].delay, defaults.drainMin);
  assert.equal(of("reconnecting")[0].kind, "drain");
  clock.advance(defaults.drainMin);
  await flush();
  ws.last().drop(1006); // refused before the welcome
  assert.equal(of("reconnecting")[1].kind, "overload");
  assert.equal(of("reconnecting")[1].delay, defaults.overloadMin);
  clock.advance(defaults.overloadMin);
  await flush();
  ws.last().recv({ type: "welcome", id: "c2", interval_ms: 1000 });
  ws.last().drop(1008, "too many bad messages");
  assert.equal(c.state, "closed");
  assert.equal(of("reconnecting").length, 2);
  clock.advance(3_600_000);
  assert.equal(ws.all.length, 3);
  // connect() tries again after a final close, close() is for good
  c.connect();
  await flush();
  assert.equal(ws.all.length, 4);
  c.close();
  c.connect();
  await flush();
  assert.equal(ws.all.length, 4);
});

test("client: liveness from interval_ms, and own pings when ticks are off", async () => {
  const { c, ws, of, clock } = setup({ livenessFloor: 2000, pingInterval: 1000, pongTimeout: 500 });
  c.connect();
  await flush();
  const a = ws.last();
  a.recv({ type: "welcome", id: "c1", interval_ms: 1000 });
  clock.advance(2500);
  a.recv({ type: "tick", seq: 1, due: 0 }); // a frame: still alive
  clock.advance(2999);
  assert.equal(of("error").length, 0);
  clock.advance(1); // 3 s = max(3·1000, 2000) without a frame
  assert.equal(of("error")[0].code, "dead");
  assert.equal(a.closed.code, 4000);
  assert.equal(of("disconnected")[0].code, 1006);
  clock.advance(1000);
  await flush();
  const b = ws.last();
  assert.notEqual(a, b);
  b.recv({ type: "welcome", id: "c2", interval_ms: 0 });
  clock.advance(1000);
  assert.deepEqual(b.sent.at(-1), { type: "ping", id: "live" });
  b.recv({ type: "pong", id: "live" });
  clock.advance(1000);
  assert.equal(b.sent.filter((m) => m.type === "ping").length, 2);
  clock.advance(500); // no pong for 500 ms
  assert.equal(of("error").filter((e) => e.code === "dead").length, 2);
  c.close();
});

test("client: getToken before exp, after a refusal and after token expired", async () => {
  let calls = 0;
  let clock = null;
  const mk = (expMs) =>
    "h." + Buffer.from(JSON.stringify({ sub: "a", exp: Math.floor(expMs / 1000) })).toString("base64url") + ".s";
  // Tokens valid for 100 s from the fake clock's now.
  const env = setup({ getToken: async () => (calls++, mk(clock.now() + 100_000)) });
  const { c, ws, of } = env;
  clock = env.clock;
  c.connect();
  await flush();
  assert.equal(calls, 1);
  assert.match(ws.last().url, /\?token=h\./);
  ws.last().recv({ type: "welcome", id: "c1", interval_ms: 1000 });
  // refresh 20 s before exp (min(30 s, a fifth of its 100 s))
  for (let i = 0; i < 79; i++) {
    clock.advance(1000);
    ws.last().recv({ type: "tick", seq: i + 1, due: 0 });
  }
  assert.equal(calls, 1);
  clock.advance(1000);
  await flush();
  assert.equal(calls, 2);
  assert.equal(ws.all.length, 2);
  assert.equal(of("disconnected")[0].reason, "token refresh");
  // a refusal before the welcome asks for a new token
  ws.last().drop(1006);
  clock.advance(10_000);
  await flush();
  assert.equal(calls, 3);
  ws.last().recv({ type: "welcome", id: "c3", interval_ms: 1000 });
  ws.last().drop(1008, "token expired");
  assert.equal(c.state, "reconnecting");
  clock.advance(1000);
  await flush();
  assert.equal(calls, 4);
  c.close();
});

test("client: an expired static token stops until setToken", async () => {
  const { c, ws, of } = setup({ token: "static" });
  c.connect();
  await flush();
  ws.last().recv({ type: "welcome", id: "c1", interval_ms: 1000 });
  ws.last().drop(1008, "token expired");
  assert.equal(c.state, "closed");
  assert.equal(of("error").at(-1).code, "token_expired");
  c.setToken("fresh");
  await flush();
  assert.equal(ws.all.length, 2);
  assert.match(ws.last().url, /token=fresh/);
  c.close();
});

test("client: frames before a subscription's first subscribed are not its own", async () => {
  const { c, ws, of } = setup();
  const got = [];
  const s1 = c.subscribe("t", (d, info) => got.push(["old", info.seq]));
  c.connect();
  await flush();
  const a = ws.last();
  a.recv({ type: "welcome", id: "c1", interval_ms: 1000 });
  a.recv({ type: "subscribed", topic: "t", mode: "stream", seq: 4, epoch: "E", id: a.sent[0].id });
  a.recv({ type: "msg", topic: "t", seq: 5, ts: 1, data: 5 });
  s1.unsubscribe();
  c.subscribe("t", (d, info) => got.push(["new", info.seq]));
  a.recv({ type: "msg", topic: "t", seq: 6, ts: 1, data: 6 }); // sent before the server saw the unsub
  a.recv({ type: "unsubscribed", topic: "t" });
  a.recv({ type: "subscribed", topic: "t", mode: "stream", seq: 6, epoch: "E", id: a.sent.at(-1).id });
  a.recv({ type: "msg", topic: "t", seq: 7, ts: 1, data: 7 });
  assert.deepEqual(got, [["old", 5], ["new", 7]]);
  assert.deepEqual(of("error"), []);
  assert.deepEqual(a.sent.map((m) => m.type), ["sub", "unsub", "sub"]);
  c.close();
});

test("client: connect() right after new Client opens one socket", async () => {
  const clock = fakeClock();
  const ws = fakeSockets();
  const c = new Client("ws://x/ws", { WebSocket: ws.FakeWS, now: clock.now, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout });
  c.connect();
  await flush();
  assert.equal(ws.all.length, 1);
  c.close();
});
