// Integration tests of the SSE fallback against real wspush processes (see
// fixture.mjs): the fixture's proxy drops every connection that asks for
// an Upgrade, so WebSocket fails on that path while /sse works.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Client } from "../wspush.js";
import { skip, sleep, startServer, until } from "./fixture.mjs";

function record(t, url, opts = {}) {
  const c = new Client(url, { backoffBase: 100, backoffCap: 500, overloadMin: 100, ...opts });
  const ev = { gone: [], resumed: [], errors: [], disconnected: [], connected: [], transport: [] };
  for (const k of Object.keys(ev)) c.on(k === "errors" ? "error" : k, (e) => ev[k].push(e));
  t.after(() => c.close());
  return { c, ev };
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test("WebSocket blocked: the client falls back to SSE, receives, resumes after a cut, changes topics", { skip }, async (t) => {
  const s = await startServer(["-push-interval", "100ms", "-history-size", "1000"]);
  await s.blockUpgrades(true);
  const { c, ev } = record(t, s.proxy, { upgradeAfter: 600_000 });
  const feed = [];
  const second = [];
  c.subscribe("feed", (d, info) => feed.push([info.seq, d.n]));
  await until("open over SSE", 10_000, () => c.state === "open" && c.transport === "sse" && c._subs.get("feed")._state.known);
  const { blocked } = await s.blockUpgrades(true);
  assert.ok(blocked >= 2, `the proxy dropped ${blocked} upgrades, want the client's 2 WebSocket attempts`);
  assert.deepEqual(ev.transport, [{ transport: "sse", prev: "" }]);

  for (let n = 1; n <= 10; n++) await s.publish("feed", { n });
  await until("first 10", 5000, () => feed.length === 10);
  const { cut } = await s.cut();
  assert.equal(cut, 1);
  for (let n = 11; n <= 30; n++) await s.publish("feed", { n }); // while the client is away
  await until("resumed", 10_000, () => ev.resumed.length === 1 && c.state === "open");
  for (let n = 31; n <= 40; n++) await s.publish("feed", { n });
  await until("40 messages", 5000, () => feed.length >= 40);
  assert.equal(c.transport, "sse", "an SSE stream that was open and dropped is reopened over SSE");
  assert.ok(ev.resumed[0].replayed >= 1, `replayed ${ev.resumed[0].replayed}`);

  // A subscribe on SSE reopens the stream with every position: the feed
  // goes on without a gap or a repeat while the topic set changes.
  const sub = c.subscribe("second", (d, info) => second.push([info.seq, d.n]));
  for (let n = 41; n <= 50; n++) await s.publish("feed", { n });
  await until("second subscribed", 5000, () => c._subs.get("second")._state.known);
  for (let n = 1; n <= 3; n++) await s.publish("second", { n });
  await until("feed 50, second 3", 5000, () => feed.length >= 50 && second.length >= 3);
  sub.unsubscribe();
  await s.publish("second", { n: 4 });
  await s.publish("feed", { n: 51 });
  await until("feed 51", 5000, () => feed.length >= 51);
  await sleep(200);
  assert.deepEqual(feed, range(1, 51).map((n) => [n, n]));
  assert.deepEqual(second, range(1, 3).map((n) => [n, n]));
  assert.equal(c.transport, "sse");
  await assert.rejects(c.ping(), /SSE/);
  assert.equal(c.stats.gaps, 0);
  assert.deepEqual(ev.gone, []);
  assert.deepEqual(ev.errors.filter((e) => e.code !== "one_way"), []);
  assert.equal(ev.connected.length, 2, "the cut is a reconnect, the topic changes are not");
  c.close();
  await s.stop();
});

test("on SSE the client tries WebSocket again and moves back once upgrades pass, without loss", { skip }, async (t) => {
  const s = await startServer(["-push-interval", "100ms", "-history-size", "1000"]);
  await s.blockUpgrades(true);
  const { c, ev } = record(t, s.proxy, { upgradeAfter: 300 });
  const feed = [];
  c.subscribe("feed", (d, info) => feed.push(info.seq));
  await until("open over SSE", 10_000, () => c.state === "open" && c.transport === "sse" && c._subs.get("feed")._state.known);
  let n = 0;
  for (; n < 5; n++) await s.publish("feed", { n });
  await sleep(700); // a probe or two, dropped by the proxy
  const { blocked } = await s.blockUpgrades(false);
  assert.ok(blocked >= 3, `${blocked} upgrades dropped: want the probes among them`);
  assert.equal(c.transport, "sse");
  // Publish while the client moves over.
  const end = Date.now() + 10_000;
  while (c.transport !== "websocket" && Date.now() < end) {
    await s.publish("feed", { n: n++ });
    await sleep(10);
  }
  assert.equal(c.transport, "websocket");
  for (let i = 0; i < 5; i++) await s.publish("feed", { n: n++ });
  await until("every message", 5000, () => feed.length >= n);
  await sleep(100);
  assert.deepEqual(feed, range(1, n));
  assert.deepEqual(ev.transport.map((e) => e.transport), ["sse", "websocket"]);
  assert.ok(ev.disconnected.some((d) => d.reason === "upgrade to websocket"));
  assert.ok((await c.ping()) >= 0);
  assert.deepEqual(ev.gone, []);
  assert.deepEqual(ev.errors, []);
  c.close();
  await s.stop();
});

test("SSE over a drain: the close event, then the stream reopens after the server's retry and goes on", { skip }, async (t) => {
  const s = await startServer(["-push-interval", "100ms", "-history-size", "1000", "-drain-rate", "100000", "-shutdown-timeout", "3s"]);
  const { c, ev } = record(t, s.ws, { transport: "sse", drainMin: 50, drainWindow: 100 });
  const feed = [];
  const reconnecting = [];
  c.on("reconnecting", (e) => reconnecting.push(e));
  c.subscribe("feed", (d, info) => feed.push(info.seq));
  await until("open over SSE", 10_000, () => c.state === "open" && c._subs.get("feed")._state.known);
  for (let n = 1; n <= 5; n++) await s.publish("feed", { n });
  await until("5", 5000, () => feed.length === 5);
  await s.restart("TERM");
  await until("reconnected", 15_000, () => ev.connected.length === 2);
  assert.equal(ev.disconnected[0].code, 1001);
  assert.equal(reconnecting[0].kind, "drain");
  assert.ok(reconnecting[0].delay >= 1000, `waited ${reconnecting[0].delay} ms: the server's retry (1000-4999) is the floor`);
  // Without -state-dir the restarted server's history is new: one gone, then live.
  await until("gone or resumed", 5000, () => ev.gone.length + ev.resumed.length === 1);
  const before = feed.length;
  for (let n = 1; n <= 3; n++) await s.publish("feed", { n });
  await until("3 more", 5000, () => feed.length === before + 3);
  c.close();
  await s.stop();
});
