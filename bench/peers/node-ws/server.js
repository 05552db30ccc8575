#!/usr/bin/env node
// node-ws: the wspush peer written the way the `ws` README and the classic
// "server sends messages to the client" tutorial do it: a WebSocketServer on
// an http.Server, one setInterval per connection, and a broadcast that loops
// over wss.clients. The behaviour contract is in ../README.md.
//
//   node server.js -addr 127.0.0.1:9000 -admin-addr 127.0.0.1:9001 -push-interval 5s
'use strict';

const http = require('node:http');
const { performance } = require('node:perf_hooks');
const { WebSocketServer, WebSocket } = require('ws');

const WELCOME_TEXT = 'Welcome to the server!';

// parseDuration reads a Go-style duration: "5s", "100ms", "1m30s", "250us".
function parseDuration(s) {
  const units = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let ms = 0;
  let end = 0;
  let m;
  while ((m = re.exec(s)) !== null) {
    ms += parseFloat(m[1]) * units[m[2]];
    end = re.lastIndex;
  }
  if (s === '' || end !== s.length) throw new Error(`invalid duration ${JSON.stringify(s)}`);
  return ms;
}

// parseArgs accepts -name value, --name value, -name=value and --name=value.
function parseArgs(argv) {
  const opts = { addr: '127.0.0.1:9000', 'admin-addr': '127.0.0.1:9001', 'push-interval': '5s' };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--?([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m) throw new Error(`unexpected argument ${JSON.stringify(argv[i])}`);
    if (m[1] === 'h' || m[1] === 'help') {
      process.stderr.write('usage: node server.js [-addr HOST:PORT] [-admin-addr HOST:PORT] [-push-interval DURATION]\n');
      process.exit(0);
    }
    if (!(m[1] in opts)) throw new Error(`unknown flag -${m[1]}`);
    let v = m[2];
    if (v === undefined) {
      if (i + 1 >= argv.length) throw new Error(`flag needs an argument: -${m[1]}`);
      v = argv[++i];
    }
    opts[m[1]] = v;
  }
  const intervalMs = parseDuration(opts['push-interval']);
  if (intervalMs < 1) throw new Error('-push-interval must be at least 1ms');
  return { addr: opts.addr, adminAddr: opts['admin-addr'], intervalMs };
}

// splitHostPort turns "127.0.0.1:9000", "[::1]:9000" or ":9000" into a host
// (undefined for all interfaces) and a port.
function splitHostPort(addr) {
  const i = addr.lastIndexOf(':');
  if (i < 0) throw new Error(`address ${JSON.stringify(addr)} has no port`);
  let host = addr.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host: host === '' ? undefined : host, port: Number(addr.slice(i + 1)) };
}

function formatAddr(a) {
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

// nowNs is the wall clock in Unix nanoseconds (a BigInt: Unix nanoseconds
// do not fit in a double), read through the monotonic high-resolution clock.
const epochOffsetNs =
  BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e3)) * 1000n - process.hrtime.bigint();
function nowNs() {
  return epochOffsetNs + process.hrtime.bigint();
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`node-ws: ${err.message}\n`);
  process.exit(2);
}
const intervalNs = BigInt(Math.round(opts.intervalMs * 1e6));

// The WebSocket server: GET /ws upgrades, anything else is a 404.
const server = http.createServer((req, res) => {
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found\n');
});
const wss = new WebSocketServer({ server, path: '/ws' });
let nextConnId = 0;

wss.on('connection', function connection(ws) {
  const connectedAt = nowNs();
  const id = 'c' + (++nextConnId).toString(36);
  ws.send(JSON.stringify({ type: 'welcome', id, interval_ms: Math.round(opts.intervalMs), text: WELCOME_TEXT }));

  // The periodic push. JSON.stringify cannot write a BigInt, so the tick is
  // written by hand; it is the same JSON the other peers send.
  let seq = 0;
  const timer = setInterval(() => {
    seq++;
    const due = connectedAt + BigInt(seq) * intervalNs;
    ws.send(`{"type":"tick","seq":${seq},"due":${due}}`);
  }, opts.intervalMs);

  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg !== null && msg.type === 'ping' && msg.id !== undefined) {
      ws.send(JSON.stringify({ type: 'pong', id: msg.id }));
    }
  });
  ws.on('error', () => {});
  ws.on('close', () => clearInterval(timer));
});

// The admin server: POST /v1/broadcast and GET /healthz.
let broadcastSeq = 0n;

function reply(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body) + '\n');
}

const admin = http.createServer((req, res) => {
  if (req.url === '/healthz' && req.method === 'GET') {
    reply(res, 200, { status: 'ok', connections: wss.clients.size });
    return;
  }
  if (req.url !== '/v1/broadcast' || req.method !== 'POST') {
    reply(res, 404, { error: 'not found' });
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const ts = nowNs();
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      body = undefined;
    }
    if (body === null || typeof body !== 'object' || body.data === undefined) {
      reply(res, 400, { error: 'body must be {"data":<JSON>}' });
      return;
    }
    broadcastSeq++;
    const frame = `{"type":"msg","topic":"","seq":${broadcastSeq},"ts":${ts},"data":${JSON.stringify(body.data)}}`;
    let delivered = 0;
    wss.clients.forEach((client) => {
      if (client.readyState === WebSocket.OPEN) {
        client.send(frame);
        delivered++;
      }
    });
    reply(res, 200, { delivered });
  });
});

function listen(srv, addr) {
  const { host, port } = splitHostPort(addr);
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, host, () => resolve(srv.address()));
  });
}

function shutdown() {
  wss.clients.forEach((client) => client.close(1001, 'server shutting down'));
  server.close();
  admin.close();
  // Give the close frames a moment to leave, then go.
  setTimeout(() => process.exit(0), 200).unref();
  wss.close(() => setImmediate(() => process.exit(0)));
}

(async () => {
  try {
    const [ws, adm] = await Promise.all([listen(server, opts.addr), listen(admin, opts.adminAddr)]);
    process.on('SIGTERM', shutdown);
    process.on('SIGINT', shutdown);
    process.stderr.write(`listening ws=${formatAddr(ws)} admin=${formatAddr(adm)}\n`);
  } catch (err) {
    process.stderr.write(`node-ws: ${err.message}\n`);
    process.exit(1);
  }
})();
