// Helpers for the integration tests: the Go fixture (server/jsfixture_test.go)
// starts wspush processes behind cuttable proxies; tests reach it at
// $WSPUSH_TEST_FIXTURE. Without it (plain `npm test`) those tests skip.
import { createHmac } from "node:crypto";

export const fixtureURL = process.env.WSPUSH_TEST_FIXTURE || "";
export const skip = fixtureURL ? false : "needs the Go fixture: go test -run TestJSClient ./server/";

async function post(path, body) {
  const r = await fetch(fixtureURL + path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
  if (!r.ok) throw new Error(`fixture ${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

/** Starts a wspush process with these flags; returns its URLs and controls. */
export async function startServer(args = []) {
  const s = await post("/servers", { args });
  return {
    ...s,
    restart: (signal = "TERM", downMs = 0) => post(`/servers/${s.id}/restart?signal=${signal}&down_ms=${downMs}`),
    cut: () => post(`/servers/${s.id}/cut`),
    freeze: () => post(`/servers/${s.id}/freeze`),
    // The proxy drops connections that ask for an Upgrade: WebSocket fails, /sse works.
    blockUpgrades: (on = true) => post(`/servers/${s.id}/block-ws?on=${on ? 1 : 0}`),
    stop: () => post(`/servers/${s.id}/stop`),
    publish: (topic, data) => publish(s.admin, topic, data),
  };
}

/** Publishes over the admin API; returns {topic, seq} or throws. */
export async function publish(admin, topic, data) {
  const r = await fetch(admin + "/v1/publish", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ topic, data }),
  });
  if (!r.ok) throw new Error(`publish: ${r.status}`);
  return r.json();
}

/** An HS256 JWT. */
export function hsToken(secret, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

/** Polls cond every 10 ms until it is true; throws after ms. */
export async function until(what, ms, cond) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
