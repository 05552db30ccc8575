// Integration tests against real wspush processes (see fixture.mjs).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Client } from "../wspush.js";
import { hsToken, skip, sleep, startServer, until } from "./fixture.mjs";

// A client that records what it sees.
function record(t, url, opts = {}) {
  const c = new Client(url, { backoffBase: 100, backoffCap: 1000, overloadMin: 200, ...opts });
  const ev = { gone: [], resumed: [], errors: [], disconnected: [], reconnecting: [], connected: [] };
  c.on("gone", (e) => ev.gone.push(e));
  c.on("resumed", (e) => ev.resumed.push(e));
  c.on("error", (e) => ev.errors.push(e));
  c.on("disconnected", (e) => ev.disconnected.push(e));
  c.on("reconnecting", (e) => ev.reconnecting.push(e));
  c.on("connected", (e) => ev.connected.push(e));
  t.after(() => c.close());
  return { c, ev };
}

test("subscribe and receive: stream in order, latest on ticks, ping, broadcast", { skip }, async (t) => {
  const s = await startServer(["-push-interval", "100ms"]);
  const { c, ev } = record(t, s.ws);
  const got = [];
  const latest = [];
  const broadcasts = [];
  c.subscribe("feed", { mode: "stream" }, (data, info) => got.push([info.seq, data.n]));
  c.subscribe("price", { mode: "latest" }, (data) => latest.push(data.v));
  c.on("broadcast", (m) => broadcasts.push(m.data));
  await until("connected", 5000, () => c.state === "open");
  await until("subscribed", 5000, () => c._subs.get("feed")._state.known);
  for (let n = 1; n <= 20; n++) await s.publish("feed", { n });
  await s.publish("price", { v: 1 });
  await s.publish("price", { v: 2 });
  await fetch(s.admin + "/v1/broadcast", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ data: "hello" }),
  });
  await until("20 messages", 5000, () => got.length === 20);
  assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => [i + 1, i + 1]));
  await until("latest value 2", 5000, () => latest.at(-1) === 2);
  await until("broadcast", 5000, () => broadcasts.length === 1);
  const rtt = await c.ping();
  assert.ok(rtt >= 0 && rtt < 2000, `ping rtt ${rtt}`);
  assert.equal(c.send({ type: "ping", id: "mine" }), true);
  assert.deepEqual(ev.errors, []);
  assert.deepEqual(ev.gone, []);
  c.close();
  await s.stop();
});

test("resume after the network path is cut: every message once, in order", { skip }, async (t) => {
  const s = await startServer(["-push-interval", "100ms", "-history-size", "1000"]);
  const { c, ev } = record(t, s.proxy);
  const got = [];
  c.subscribe("feed", (data, info) => got.push(info.seq));
  await until("subscribed", 5000, () => c.state === "open" && c._subs.get("feed")._state.known);
  for (let n = 1; n <= 10; n++) await s.publish("feed", { n });
  await until("first 10", 5000, () => got.length === 10);
  const { cut } = await s.cut();
  assert.equal(cut, 1);
  for (let n = 11; n <= 30; n++) await s.publish("feed", { n }); // while the client is away
  await until("resumed", 5000, () => ev.resumed.length === 1);
  for (let n = 31; n <= 40; n++) await s.publish("feed", { n });
  await until("40 messages", 5000, () => got.length >= 40);
  await sleep(100);
  assert.deepEqual(got, Array.from({ length: 40 }, (_, i) => i + 1));
  assert.ok(ev.resumed[0].replayed >= 1, `replayed ${ev.resumed[0].replayed}`);
  assert.deepEqual(ev.gone, []);
  assert.deepEqual(ev.errors, []);
  assert.equal(ev.disconnected[0].code, 1006);
  c.close();
  await s.stop();
});

test("liveness: a silent path is declared dead and replaced (ticks on, and own pings when ticks are off)", { skip }, async (t) => {
  for (const [args, opts, bound] of [
    [["-push-interval", "100ms"], { livenessFloor: 500 }, 500],
    [["-push-interval", "0"], { pingInterval: 300, pongTimeout: 300 }, 600],
  ]) {
    const s = await startServer([...args, "-history-size", "1000"]);
    const { c, ev } = record(t, s.proxy, opts);
    const got = [];
    c.subscribe("feed", (d, info) => got.push(info.seq));
    await until("subscribed", 5000, () => c.state === "open" && c._subs.get("feed")._state.known);
    await s.publish("feed", 1);
    await until("1", 5000, () => got.length === 1);
    const frozenAt = Date.now();
    await s.freeze();
    await s.publish("feed", 2);
    await until("declared dead", 5000, () => ev.errors.some((e) => e.code === "dead"));
    const after = Date.now() - frozenAt;
    assert.ok(after <= bound + 1500, `dead after ${after} ms, bound ${bound} ms`);
    await until("reconnected", 5000, () => ev.connected.length === 2);
    await until("message 2 by resume", 5000, () => got.length === 2);
    assert.deepEqual(got, [1, 2]);
    c.close();
    await s.cut();
    await s.stop();
  }
});

const secret = "js-client-test-secret-0123456789abcdef";

test("token refresh: getToken before exp, reconnect with resume, nothing lost", { skip }, async (t) => {
  const s = await startServer(["-jwt-secret", secret, "-push-interval", "100ms", "-history-size", "1000"]);
  let calls = 0;
  const getToken = () => {
    calls++;
    // The first answer is garbage: the refusal (401) must lead to a new call.
    if (calls === 1) return "not-a-token";
    return hsToken(secret, { sub: "ann", exp: Math.floor(Date.now() / 1000) + 3, topics: [">"] });
  };
  const { c, ev } = record(t, s.ws, { getToken, overloadMin: 100 });
  const got = [];
  c.subscribe("feed", (d, info) => got.push(info.seq));
  await until("connected after a refusal", 5000, () => c.state === "open");
  assert.equal(calls, 2);
  let n = 0;
  const end = Date.now() + 5000;
  while (Date.now() < end) {
    await s.publish("feed", ++n);
    await sleep(20);
  }
  await until("every message", 5000, () => got.length === n);
  assert.deepEqual(got, Array.from({ length: n }, (_, i) => i + 1));
  assert.ok(calls >= 3, `getToken called ${calls} times in 5 s with 2-3 s tokens`);
  assert.ok(!ev.disconnected.some((d) => d.reason === "token expired"), JSON.stringify(ev.disconnected));
  assert.ok(ev.disconnected.some((d) => d.reason === "token refresh"));
  assert.deepEqual(ev.gone, []);
  c.close();

  // A static token that expires: the server's 1008 "token expired" is final.
  const { c: c2, ev: ev2 } = record(t, s.ws, { token: hsToken(secret, { sub: "bob", exp: Math.floor(Date.now() / 1000) + 1 }) });
  await until("closed for good", 5000, () => c2.state === "closed");
  assert.ok(ev2.errors.some((e) => e.code === "token_expired"), JSON.stringify(ev2.errors));
  await sleep(300);
  assert.equal(ev2.connected.length, 1);
  // …until a new token arrives.
  c2.setToken(hsToken(secret, { sub: "bob", exp: Math.floor(Date.now() / 1000) + 60 }));
  await until("connected again", 5000, () => c2.state === "open");
  c2.close();
  await s.stop();
});

test("503 refusals: overload backoff, then in once there is room", { skip }, async (t) => {
  const s = await startServer(["-max-conns", "1", "-push-interval", "100ms"]);
  const a = record(t, s.ws);
  await until("a connected", 5000, () => a.c.state === "open");
  const b = record(t, s.ws, { overloadMin: 300, backoffBase: 100 });
  await until("b refused 3 times", 10000, () => b.ev.reconnecting.length >= 3);
  assert.equal(b.c.state !== "open", true);
  for (const r of b.ev.reconnecting) {
    assert.equal(r.kind, "overload");
    assert.ok(r.delay >= 300, `delay ${r.delay} after a refusal`);
  }
  a.c.close();
  await until("b in", 10000, () => b.c.state === "open");
  b.c.close();
  await s.stop();
});
