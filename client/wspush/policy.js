// Reconnect policy of the wspush client: the default options, the backoff,
// what a close code means for reconnecting, and a JWT's expiry. Pure
// functions; nothing here keeps state.

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
  fallbackAfter: 2, // transport "auto": SSE after this many WebSocket failures before the welcome
  upgradeAfter: 120000, // ms on SSE before trying WebSocket again (doubling while that fails, ≤ 16×)
  heartbeatTimeout: 90000, // ms: an SSE stream read by fetch is dead after this without a byte (ticks off)
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
 * url with ?token= (or &token=) appended when there is a token.
 * @param {string} url
 * @param {string} token
 */
export function withToken(url, token) {
  if (!token) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}
