// wspush-client: the JavaScript client of wspush (docs/client.md).
//
// Dependency-free ES modules for browsers, Node ≥ 22 and Node 20 with
// --experimental-websocket. The client keeps a connection alive over
// WebSocket (/ws), or over Server-Sent Events (/sse) when WebSocket cannot
// be used (transport "auto", the default): full-jitter exponential
// backoff, longer waits after overload and after a server drain, no
// reconnect after a final close; it resumes every topic with since+epoch
// after every reconnect, drops duplicates, and never leaves a gap silent:
// lost history is a "gone" event, a seq jump without it an "error" event
// with code "seq_gap". Protocol: docs/protocol.md.
//
// This file is the entry point; the modules are in wspush/ (served by
// wspush at GET /wspush/<name>.js beside GET /wspush.js).

export { Client } from "./wspush/client.js";
export { backoffDelay, closeKind, defaults, tokenExpiry } from "./wspush/policy.js";
export { TopicState } from "./wspush/state.js";
export { SSEParser } from "./wspush/sse-reader.js";
export { TransportChooser } from "./wspush/fallback.js";
