#!/usr/bin/env bash
# One publish reaching 1,000,000 clients spread over many wspush nodes joined
# by NATS JetStream (docs/cluster.md), on this one machine:
#   - a nats-server with JetStream (the Go module, run with go run);
#   - PROCS wspush nodes on ports 9000.. (admin 10000..), each -nats, -max-conns;
#   - wsload publish: CONNS subscribers of one topic over all nodes, publishes
#     through node 0's API at PUB_RATE/s; end-to-end latency = receive − ts.
# Everything it starts is stopped at the end (or on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/../.."
CONNS=${CONNS:-1000000}
PROCS=${PROCS:-60}
MAXCONNS=${MAXCONNS:-17000}
RATE=${RATE:-4000}
PUB_RATE=${PUB_RATE:-0.05}
DURATION=${DURATION:-420s}
OUT=${OUT:-bench/results/$(date -u +%Y-%m-%dT%H%M)-cluster-broadcast.json}
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

make build >/dev/null
GOBIN="$WORK/bin" go install github.com/nats-io/nats-server/v2@v2.15.2
"$WORK/bin/nats-server" -js -a 127.0.0.1 -p 14222 -sd "$WORK/js" >"$WORK/nats.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "Server is ready" "$WORK/nats.log" && break; sleep 0.3; done
grep -q "Server is ready" "$WORK/nats.log" || { cat "$WORK/nats.log"; echo "nats-server did not start" >&2; exit 1; }
for i in $(seq 0 $((PROCS - 1))); do
  ./bin/wspush -addr 127.0.0.1:$((9000 + i)) -admin-addr 127.0.0.1:$((10000 + i)) -nats nats://127.0.0.1:14222 \
    -max-conns "$MAXCONNS" -push-interval 0 -ping-interval 0 -idle-timeout 0 -accept-rate 0 -max-msg-rate 0 \
    >"$WORK/wspush.$i.log" 2>&1 &
  pids+=($!)
done
for i in $(seq 0 $((PROCS - 1))); do
  for _ in $(seq 100); do curl -sf "127.0.0.1:$((10000 + i))/healthz" >/dev/null && break; sleep 0.2; done
done
echo "nats + $PROCS nodes up; wsload publish -conns $CONNS -pub-rate $PUB_RATE"
./bin/wsload publish -url "ws://127.0.0.1:9000-$((9000 + PROCS - 1))/ws" -admin http://127.0.0.1:10000 \
  -conns "$CONNS" -rate "$RATE" -topics 1 -pub-rate "$PUB_RATE" -duration "$DURATION" -grace 60s \
  -procs auto -sources 127.0.0.2-127.0.0.60 -out "$OUT"
echo "result: $OUT (bin/wsload report $OUT)"
