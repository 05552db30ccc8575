#!/usr/bin/env bash
# profile-ticks.sh — CPU profile of wspush under a wsbench-style ticks load (docs/profiling.md).
# wspush on CPU 0, wsload on CPU 1; N connections, push interval I; one profile (Go allows one
# CPU profiler per process, so the two modes exclude each other):
#   MODE=window (default)  $OUT/pprof-window.pb.gz: 30 s from /debug/pprof/profile in steady state
#   MODE=run               $OUT/cpu.pprof: the whole run, written by -profile cpu on SIGTERM
# Every process is started in this script's process group and killed on exit.
set -euo pipefail
MODE=${MODE:-window}; N=${N:-19000}; I=${I:-250ms}; RATE=${RATE:-4000}; HOLD=${HOLD:-45}
OUT=${OUT:-/tmp/wsbench-profile}; ROOT=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$OUT"; cd "$ROOT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; sleep 2; for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
taskset -c 0 bin/wspush -addr 127.0.0.1:9000 -admin-addr 127.0.0.1:9500 -push-interval "$I" \
  -ping-interval 0 -idle-timeout 0 -max-conns-per-ip 0 -accept-rate 0 \
  $([ "$MODE" = run ] && echo "-profile cpu -profile-dir $OUT") >"$OUT/wspush.log" 2>&1 &
srv=$!; pids+=("$srv")
for _ in $(seq 50); do curl -sf 127.0.0.1:9500/healthz >/dev/null && break; sleep 0.1; done
taskset -c 1 bin/wsload ticks -conns "$N" -rate "$RATE" -duration "$((HOLD + N / RATE + 5))s" \
  -url ws://127.0.0.1:9000/ws -quiet -out "$OUT/wsload.json" >"$OUT/wsload.log" 2>&1 &
pids+=("$!")
sleep "$((N / RATE + 5))"
[ "$MODE" = window ] && code=$(curl -s -m 60 -o "$OUT/pprof-window.pb.gz" -w "%{http_code}" "http://127.0.0.1:9500/debug/pprof/profile?seconds=30" || true)
[ "$MODE" = window ] && echo "pprof window: HTTP $code"
wait "${pids[1]}" || true
kill -TERM "$srv"; wait "$srv" || true
prof="$OUT/pprof-window.pb.gz"; [ "$MODE" = run ] && prof="$OUT/cpu.pprof"
go tool pprof -top -nodecount=25 bin/wspush "$prof" >"$OUT/top-$MODE.txt" 2>&1 || true
go tool pprof -top -cum -nodecount=25 bin/wspush "$prof" >"$OUT/top-$MODE-cum.txt" 2>&1 || true
tail -12 "$OUT/wsload.log"
echo "profiles and top listings in $OUT"
