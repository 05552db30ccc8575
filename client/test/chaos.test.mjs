// The chaos test of issue 14: a steady publisher, 200 clients, the server
// restarted gracefully (SIGTERM) and killed (SIGKILL), and the network path
// cut twice. At the end every client has every acknowledged message exactly
// once and in order, except across an explicit "gone" for exactly the
// topics whose history was lost.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Client } from "../wspush.js";
import { fixtureURL, skip, sleep, startServer, until } from "./fixture.mjs";

const CLIENTS = 200;
const TOPICS = ["chaos/a", "chaos/b", "chaos/c", "chaos/d"];

test("chaos: 200 clients, SIGTERM and SIGKILL restarts, cut paths", { skip, timeout: 90_000 }, async (t) => {
  const features = await (await fetch(fixtureURL + "/features")).json();
  // WSPUSH_CHAOS_STATE=off runs without -state-dir even where it exists.
  const hasStateDir = !!features.flags["state-dir"];
  const persistent = hasStateDir && process.env.WSPUSH_CHAOS_STATE !== "off";
  const args = ["-push-interval", "500ms", "-history-size", "2000", "-drain-rate", "100000", "-shutdown-timeout", "5s", "-accept-rate", "0"];
  if (persistent) args.push("-state-dir", "$TMP");
  const s = await startServer(args);
  t.diagnostic(`state persistence (-state-dir): ${persistent ? "on" : hasStateDir ? "off (WSPUSH_CHAOS_STATE=off)" : "not in this build"}`);

  // The clients, all through the proxy; each records per topic what its
  // handler saw and where the gone events fell.
  const clients = [];
  for (let i = 0; i < CLIENTS; i++) {
    const c = new Client(s.proxy, {
      backoffBase: 200,
      backoffCap: 2000,
      overloadMin: 200,
      drainMin: 100,
      drainWindow: 1500,
      livenessFloor: 3000,
    });
    const rec = { c, got: {}, gone: {}, errors: [] };
    for (const topic of TOPICS) {
      rec.got[topic] = [];
      rec.gone[topic] = [];
      c.subscribe(topic, (data) => rec.got[topic].push(data.n));
    }
    c.on("gone", (e) => rec.gone[e.topic].push(rec.got[e.topic].length));
    c.on("error", (e) => rec.errors.push(e));
    t.after(() => c.close());
    clients.push(rec);
  }
  await until("all subscribed", 20_000, () => clients.every((r) => r.c.state === "open" && TOPICS.every((tp) => r.c._subs.get(tp)._state.known)));

  // The publisher: one message every 10 ms, round robin over the topics,
  // each carrying its topic's own counter n; acked = the 200 answers.
  const acked = Object.fromEntries(TOPICS.map((tp) => [tp, []]));
  let sent = 0;
  let failed = 0;
  let publishing = true;
  const publisher = (async () => {
    const counters = Object.fromEntries(TOPICS.map((tp) => [tp, 0]));
    for (let i = 0; publishing; i++) {
      const topic = TOPICS[i % TOPICS.length];
      const n = ++counters[topic];
      sent++;
      try {
        await s.publish(topic, { n });
        acked[topic].push(n);
      } catch {
        failed++;
      }
      await sleep(10);
    }
  })();

  const events = [];
  const step = async (name, f) => {
    const begin = Date.now();
    const r = await f();
    events.push(`${name} (${Date.now() - begin} ms${r ? " " + JSON.stringify(r) : ""})`);
  };
  await sleep(1500);
  await step("cut", () => s.cut());
  await sleep(2500);
  await step("SIGTERM restart", () => s.restart("TERM"));
  await sleep(3000);
  await step("SIGKILL restart", () => s.restart("KILL", 300));
  await sleep(3000);
  await step("cut", () => s.cut());
  await sleep(2500);
  publishing = false;
  await publisher;
  t.diagnostic(`events: ${events.join(", ")}`);

  // Every client catches up with the last acknowledged message of each topic.
  const last = Object.fromEntries(TOPICS.map((tp) => [tp, acked[tp].at(-1)]));
  await until("every client has the last acked message of every topic", 20_000, () =>
    clients.every((r) => TOPICS.every((tp) => r.got[tp].at(-1) === last[tp])),
  );

  const lost = persistent ? 1 : 2; // restarts that lose history: SIGKILL, and SIGTERM without -state-dir
  let delivered = 0;
  let duplicates = 0;
  let goneEvents = 0;
  let missingAcrossGone = 0;
  let reconnects = 0;
  const ackedTotal = TOPICS.reduce((n, tp) => n + acked[tp].length, 0);
  for (const [i, r] of clients.entries()) {
    duplicates += r.c.stats.duplicates;
    reconnects += r.c.stats.reconnects;
    assert.deepEqual(r.errors.filter((e) => e.code === "seq_gap"), [], `client ${i}: seq gaps`);
    for (const tp of TOPICS) {
      const got = r.got[tp];
      delivered += got.length;
      goneEvents += r.gone[tp].length;
      for (let k = 1; k < got.length; k++) {
        assert.ok(got[k] > got[k - 1], `client ${i} ${tp}: ${got[k]} after ${got[k - 1]} (order, or a duplicate)`);
      }
      assert.equal(r.gone[tp].length, lost, `client ${i} ${tp}: ${r.gone[tp].length} gone events, want ${lost}`);
      // Between gone events (segments), every acked message is there.
      const bounds = [0, ...r.gone[tp], got.length];
      const received = new Set(got);
      for (let g = 0; g + 1 < bounds.length; g++) {
        const seg = got.slice(bounds[g], bounds[g + 1]);
        const lo = g === 0 ? acked[tp][0] : seg[0];
        const hi = g === bounds.length - 2 ? last[tp] : seg.at(-1);
        if (seg.length === 0 && g !== 0 && g !== bounds.length - 2) continue;
        const holes = acked[tp].filter((n) => n >= lo && n <= hi && !received.has(n));
        assert.deepEqual(holes.slice(0, 10), [], `client ${i} ${tp}: acked messages missing inside segment ${g} [${lo}, ${hi}]`);
      }
      missingAcrossGone += acked[tp].filter((n) => !received.has(n)).length;
    }
  }
  t.diagnostic(
    `chaos counts: ${CLIENTS} clients × ${TOPICS.length} topics; publishes sent ${sent}, acked ${ackedTotal}, failed ${failed}; ` +
      `delivered ${delivered} (acked × clients = ${ackedTotal * CLIENTS}); duplicates dropped ${duplicates}; ` +
      `gone events ${goneEvents} (${lost} per client and topic); acked but lost across a gone ${missingAcrossGone}; reconnects ${reconnects}`,
  );
  await s.stop();
});
