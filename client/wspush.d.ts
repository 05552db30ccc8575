// Type declarations of wspush.js and the modules it re-exports from wspush/ (docs/client.md).

/** Options of new Client(url, opts); every number is in milliseconds. */
export interface ClientOptions {
  /** A JWT, sent as ?token= (browsers cannot set headers on a WebSocket or an EventSource). */
  token?: string;
  /** Called for a token: before the first connect, before the current token's exp, and after a refusal or a "token expired" close. */
  getToken?: () => string | Promise<string>;
  /** Attempt n waits random(0, min(backoffCap, backoffBase·2^n)). Default 1000. */
  backoffBase?: number;
  /** Default 30000. */
  backoffCap?: number;
  /** Added to the wait after 1011-1014, 4008, 4429, 4500-4599 and refused upgrades (503, 429, 401). Default 2000. */
  overloadMin?: number;
  /** After 1001 "server shutting down" the wait is uniform over [drainMin, drainWindow]. Default 1000. */
  drainMin?: number;
  /** Default 15000. */
  drainWindow?: number;
  /** With ticks on, the connection is dead after max(3·interval_ms, livenessFloor) without a frame. Default 5000. */
  livenessFloor?: number;
  /** With ticks off, the client pings this often… Default 20000. */
  pingInterval?: number;
  /** …and the connection is dead when a pong takes longer than this. Default 10000. */
  pongTimeout?: number;
  /** From the socket's creation to the welcome. Default 10000. */
  connectTimeout?: number;
  /** The token is refreshed min(tokenMargin, a fifth of its remaining life) before its exp. Default 30000. */
  tokenMargin?: number;
  /** ping() rejects after this. Default 10000. */
  pingTimeout?: number;
  /** false: do not connect until connect() is called. Default true. */
  autoConnect?: boolean;
  /** "auto" (default): WebSocket, SSE when WebSocket cannot be used (docs/client.md "Transports"); "websocket": never SSE; "sse": never WebSocket. */
  transport?: "auto" | Transport;
  /** "auto": SSE after this many WebSocket attempts in a row failed before their welcome. Default 2. */
  fallbackAfter?: number;
  /** "auto": on SSE, try WebSocket again after this long, doubling while that fails (up to 16×). Default 120000. */
  upgradeAfter?: number;
  /** An SSE stream read by fetch with ticks off is dead after this long without a byte. Default 90000. */
  heartbeatTimeout?: number;
  /** The /sse URL; by default url with ws→http, wss→https and a trailing /ws replaced by /sse. */
  sseUrl?: string;
  /** For tests and other runtimes: WebSocket and EventSource constructors (EventSource: null reads SSE with fetch), fetch, a [0,1) random source, a clock and timers. */
  WebSocket?: (new (url: string) => WebSocket) | null;
  EventSource?: (new (url: string) => EventSource) | null;
  fetch?: typeof fetch | null;
  random?: () => number;
  now?: () => number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (t: unknown) => void;
}

export type Mode = "stream" | "latest";

/** What a handler learns about a message besides its data. */
export interface MessageInfo {
  topic: string;
  seq: number;
  /** Unix ns: when the server accepted the publish (stream) or the tick was due (latest). */
  ts: number;
  epoch: string;
}

export type Handler = (data: unknown, info: MessageInfo) => void;

export interface Subscription {
  readonly topic: string;
  readonly mode: Mode;
  /** The last seq delivered and its epoch. */
  readonly position: { seq: number; epoch: string };
  unsubscribe(): void;
}

export type State = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export type Transport = "websocket" | "sse";

export interface ClientError {
  /** seq_gap, dead, closed, token, token_expired, bad_frame, handler, listener, url, internal, websocket (the constructor threw: SSE from now on), sse_refused, one_way (send over SSE), or a server error code (bad_request, forbidden, limit, overloaded, rate_limited). */
  code: string;
  reason: string;
  topic?: string;
  id?: string | number;
  seq?: number;
  error?: unknown;
}

export interface Events {
  welcome: { type: "welcome"; id: string; interval_ms: number; text: string };
  tick: { type: "tick"; seq: number; due: number; text?: string; topics?: Record<string, { seq: number; data: unknown }> };
  state: { state: State; prev: State; code?: number; reason?: string };
  error: ClientError;
  /** History lost: messages after (epoch, since) are gone; the application must refetch. */
  gone: { topic: string; since: number; epoch: string; newEpoch: string; seq: number };
  connected: { id: string; interval_ms: number; transport: Transport };
  disconnected: { code: number; reason: string; wasOpen: boolean; transport: Transport };
  /** The first welcome, and a welcome over the other transport than the last one. */
  transport: { transport: Transport; prev: Transport | "" };
  reconnecting: { attempt: number; delay: number; kind: "normal" | "overload" | "drain"; reason: string };
  /** A resume was served: replayed messages follow. */
  resumed: { topic: string; replayed: number };
  subscribed: { type: "subscribed"; topic: string; mode: Mode; seq: number; epoch: string; history_gone?: boolean; id?: string | number };
  broadcast: { type: "msg"; topic: ""; seq: number; ts: number; data: unknown };
  /** Any other server frame (published, unsubscribed, pong to a send()). */
  message: Record<string, unknown>;
}

export class Client {
  constructor(url: string, opts?: ClientOptions);
  readonly url: string;
  readonly state: State;
  /** The server's id for the current connection ("" before the first welcome). */
  readonly connectionId: string;
  /** The transport of the last welcome; "" before the first. */
  readonly transport: Transport | "";
  /** The tick period of the current connection; 0 when ticks are off. */
  readonly intervalMs: number;
  readonly stats: { delivered: number; duplicates: number; gaps: number; gone: number; reconnects: number };
  on<E extends keyof Events>(event: E, fn: (ev: Events[E]) => void): () => void;
  subscribe(topic: string, opts: { mode?: Mode }, handler: Handler): Subscription;
  subscribe(topic: string, handler: Handler): Subscription;
  /** Sends a message as JSON; false when not connected, and over SSE (one way). */
  send(msg: object): boolean;
  /** An application ping; resolves with the round trip in ms. Rejects over SSE. */
  ping(): Promise<number>;
  /** Replaces the token; a client stopped because its token expired connects again. */
  setToken(token: string): void;
  /** Starts connecting: with autoConnect: false, or again after a final close (not after close()). */
  connect(): void;
  /** Closes for good. */
  close(): void;
}

export const defaults: Readonly<Required<Pick<ClientOptions,
  "backoffBase" | "backoffCap" | "overloadMin" | "drainMin" | "drainWindow" | "livenessFloor" |
  "pingInterval" | "pongTimeout" | "connectTimeout" | "tokenMargin" | "pingTimeout" |
  "fallbackAfter" | "upgradeAfter" | "heartbeatTimeout">>>;

/** The wait before reconnect attempt `attempt` (0-based), in ms. */
export function backoffDelay(kind: "normal" | "overload" | "drain", attempt: number, opts: typeof defaults, random: () => number): number;
/** What a close means for reconnecting. */
export function closeKind(code: number, reason: string, opened: boolean): "final" | "token" | "drain" | "overload" | "normal";
/** A JWT's exp in ms since the epoch; 0 when absent. The signature is not checked. */
export function tokenExpiry(token: string): number;

/** Per-topic resume state (exported for tests and for other clients to copy). */
export class TopicState {
  epoch: string;
  seq: number;
  known: boolean;
  resume(): { since?: number; epoch?: string };
  subscribed(m: { seq: number; epoch: string; history_gone?: boolean }, latest?: boolean): { gone: boolean; resumed: boolean; replayed: number; from: { epoch: string; seq: number } };
  accept(seq: number, latest: boolean): "dup" | "next" | "gap";
}

/** The event-stream parser the fetch reader uses (exported for tests and other clients). */
export class SSEParser {
  constructor(sink: { event(type: string, data: string, lastEventId: string): void; comment(): void; retry(ms: number): void });
  /** Takes the next decoded chunk; throws when a line passes 1 MiB. */
  push(text: string): void;
}

/** Which transport the next attempt uses (docs/client.md "Transports"). */
export class TransportChooser {
  constructor(mode: "auto" | Transport, fallbackAfter: number, caps: { ws: boolean; sse: boolean });
  next(): Transport;
  failed(kind: Transport, beforeWelcome: boolean): void;
  opened(kind: Transport): void;
  wsUnusable(): boolean;
  sseUnusable(): boolean;
  readonly canUpgrade: boolean;
  probeDelay(base: number): number;
}
