package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"wspush/server/wire"
)

// metric returns the value of the sample line that starts with series in
// a /metrics scrape (-1 if absent).
func metric(t *testing.T, s *testServer, series string) float64 {
	t.Helper()
	_, text := get(t, s.admin+"/metrics")
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

// A backend that is down gives "unavailable"; after 5 failures in a row
// the breaker opens (the metrics show it) and calls fail at once without
// a request; when the backend is back, the half-open probe closes it.
// A backend answering garbage gives "bad_gateway".
func TestHookBackendDownBreakerRecovers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the backend is down: connections to addr are refused
	s := startServer(t, "-push-interval", "0", "-proxy-rpc", "http://"+addr+"/rpc")
	c := hookDial(t, s)
	rpc := func(id int) wire.ServerMsg {
		send(t, c, fmt.Sprintf(`{"type":"rpc","id":%d,"method":"m"}`, id))
		m := next(t, c, 5*time.Second)
		if string(m.ID) != strconv.Itoa(id) {
			t.Fatalf("reply %+v to rpc %d", m, id)
		}
		return m
	}
	for i := 1; i <= 5; i++ {
		if m := rpc(i); m.Type != wire.TypeError || m.Code != wire.CodeUnavailable || !strings.Contains(m.Reason, "refused") {
			t.Fatalf("rpc %d to a closed port: %+v", i, m)
		}
	}
	if m := rpc(6); m.Type != wire.TypeError || m.Code != wire.CodeUnavailable || !strings.Contains(m.Reason, "breaker open") {
		t.Fatalf("rpc 6: %+v, want unavailable from the open breaker", m)
	}
	if v := metric(t, s, `wspush_hook_breaker_state{hook="rpc"}`); v != 2 {
		t.Fatalf("breaker state %v, want 2 (open)", v)
	}
	if v := metric(t, s, `wspush_hook_calls_total{hook="rpc",result="unavailable"}`); v != 5 {
		t.Fatalf("unavailable calls %v, want 5", v)
	}
	if v := metric(t, s, `wspush_hook_calls_total{hook="rpc",result="breaker_open"}`); v < 1 {
		t.Fatalf("breaker_open calls %v, want ≥ 1", v)
	}
	// The backend comes back on the same address.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("address %s taken meanwhile: %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"result":"back"}`))
	}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	id := 7
	eventually(t, 10*time.Second, "rpc answered after the cooldown", func() bool {
		id++
		return rpc(id).Type == wire.TypeRPCResult
	})
	if v := metric(t, s, `wspush_hook_breaker_state{hook="rpc"}`); v != 0 {
		t.Fatalf("breaker state %v after recovery, want 0", v)
	}
	if v := metric(t, s, `wspush_hook_duration_seconds_count{hook="rpc"}`); v < 6 {
		t.Fatalf("latency histogram count %v, want ≥ 6", v)
	}
}

// lagRecorder collects tick lags (arrival - due) of many clients.
type lagRecorder struct {
	phase atomic.Int32 // 0: not recording; 1: baseline; 2: during the hang
	mu    sync.Mutex
	lags  [3][]time.Duration
}

func (r *lagRecorder) read(c *websocket.Conn) {
	var m wire.ServerMsg
	for {
		_, b, err := c.ReadMessage()
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		if wire.ParseServer(b, &m) != nil || m.Type != wire.TypeTick {
			continue
		}
		if p := r.phase.Load(); p > 0 {
			r.mu.Lock()
			r.lags[p] = append(r.lags[p], time.Duration(now-m.Due))
			r.mu.Unlock()
		}
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return -1
	}
	d = slices.Clone(d)
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// 500 RPCs hang (the backend sleeps past -proxy-timeout): each gets
// "timeout" cleanly, and the tick lag of 2,000 other clients stays near
// its baseline: no poller, executor or shard waits for the backend.
func TestHookSlowBackendTicksUnaffected(t *testing.T) {
	if testing.Short() {
		t.Skip("2,500 connections")
	}
	// 500 calls in flight at once, so that each times out at the backend.
	t.Run("concurrency 500", func(t *testing.T) { slowBackend(t, 500) })
	// The default 32: the first timeouts open the breaker, and the calls
	// still queued behind them get "unavailable" at once.
	t.Run("concurrency 32", func(t *testing.T) { slowBackend(t, 32) })
}

func slowBackend(t *testing.T, concurrency int) {
	release := make(chan struct{})
	be := newBackend(t, func(string, map[string]any) (int, string) {
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		return 200, `{"result":"too late"}`
	})
	defer close(release)
	const tickers, hung = 2000, 500
	s := startServer(t, "-push-interval", "100ms", "-proxy-rpc", be.url("/rpc"), "-proxy-timeout", "1s", "-accept-rate", "0",
		"-proxy-concurrency", strconv.Itoa(concurrency), "-proxy-total", "500")
	var rec lagRecorder
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, 0, tickers+hung)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}()
	for range tickers {
		c := dial(t, s.ws)
		conns = append(conns, c)
		wg.Add(1)
		go func() { defer wg.Done(); rec.read(c) }()
	}
	// The callers read all along (their ticks too), so that no backlog of
	// ticks is read at once when their answers come.
	var timeouts, unavailable atomic.Int64
	var bad sync.Map
	var start time.Time
	var rw sync.WaitGroup
	for i := range hung {
		c := hookDial(t, s)
		conns = append(conns, c)
		rw.Add(1)
		go func() {
			defer rw.Done()
			for {
				m, err := tryNext(c, 10*time.Second)
				if err != nil {
					bad.Store(i, err.Error())
					return
				}
				if m.Type == wire.TypeTick {
					continue
				}
				switch {
				case m.Type != wire.TypeError || string(m.ID) != strconv.Itoa(i):
					bad.Store(i, fmt.Sprintf("%+v", m))
				case m.Code == wire.CodeTimeout:
					timeouts.Add(1)
				case m.Code == wire.CodeUnavailable && strings.Contains(m.Reason, "breaker open") && time.Since(start) >= time.Second:
					// The breaker opened on the first timeouts (so not
					// before 1 s): calls queued behind them (fewer workers
					// than calls), or that the server took up only then (a
					// loaded machine, -race), get "unavailable" at once.
					unavailable.Add(1)
				default:
					bad.Store(i, fmt.Sprintf("%+v", m))
				}
				return
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // every ticker past its first tick
	rec.phase.Store(1)
	time.Sleep(2 * time.Second)
	rec.phase.Store(2)
	start = time.Now()
	for i, c := range conns[tickers:] {
		send(t, c, fmt.Sprintf(`{"type":"rpc","id":%d,"method":"hang"}`, i))
	}
	sending := time.Since(start)
	rw.Wait()
	took := time.Since(start)
	time.Sleep(time.Until(start.Add(2 * time.Second)))
	rec.phase.Store(0)
	bad.Range(func(k, v any) bool { t.Errorf("rpc %v: %v", k, v); return false })
	if timeouts.Load()+unavailable.Load() != hung {
		t.Fatalf("%d of %d hung RPCs answered timeout, %d unavailable", timeouts.Load(), hung, unavailable.Load())
	}
	if took > sending+2*time.Second {
		t.Fatalf("the hung RPCs, sent in %v, were answered within %v, want about the 1 s timeout after", sending, took)
	}
	rec.mu.Lock()
	base, during := rec.lags[1], rec.lags[2]
	rec.mu.Unlock()
	t.Logf("%d hung RPCs (sent in %v), -proxy-concurrency %d: %d answered timeout, %d unavailable (breaker open), all within %v (-proxy-timeout 1s)",
		hung, sending.Round(time.Millisecond), concurrency, timeouts.Load(), unavailable.Load(), took.Round(time.Millisecond))
	t.Logf("tick lag of %d clients, baseline (no hook calls, 2 s, %d ticks): p50 %v p99 %v max %v", tickers, len(base),
		percentile(base, 0.5), percentile(base, 0.99), percentile(base, 1))
	t.Logf("tick lag while %d RPCs hang (2 s, %d ticks): p50 %v p99 %v max %v", hung, len(during),
		percentile(during, 0.5), percentile(during, 0.99), percentile(during, 1))
	if len(during) < tickers*10 {
		t.Fatalf("only %d ticks while the RPCs hung, want about %d", len(during), tickers*20)
	}
	// A generous bound, not a timing claim: -race and a busy machine move
	// the baseline itself.
	if p, b := percentile(during, 0.99), percentile(base, 0.99); p > b+time.Second {
		t.Fatalf("tick lag p99 %v while RPCs hang, want < 1s over the baseline's %v", p, b)
	}
}

// connectRun connects n clients through the server at ws and counts those
// welcomed and those closed with 4403; it returns the wall time.
func connectRun(t *testing.T, ws string, n, workers int) (accepted, refused int64, took time.Duration) {
	t.Helper()
	var acc, ref, other atomic.Int64
	var firstErr atomic.Value
	conns := make([]*websocket.Conn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := websocket.Dialer{HandshakeTimeout: 20 * time.Second}
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, _, err := d.Dial(fmt.Sprintf("%s?token=u%d", ws, i), nil)
				if err != nil {
					other.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				conns[i] = c
				_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
				var m wire.ServerMsg
				_, b, err := c.ReadMessage()
				switch {
				case err == nil && wire.ParseServer(b, &m) == nil && m.Type == wire.TypeWelcome:
					acc.Add(1)
				case websocket.IsCloseError(err, 4403):
					ref.Add(1)
				default:
					other.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprint(err, " ", string(b)))
				}
			}
		}()
	}
	wg.Wait()
	took = time.Since(start)
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	if other.Load() > 0 {
		t.Errorf("%d connections neither welcomed nor refused; first: %v", other.Load(), firstErr.Load())
	}
	return acc.Load(), ref.Load(), took
}

// connectBackend accepts user uN unless N is a multiple of 10.
func connectBackend(t *testing.T) *backend {
	return newBackend(t, func(_ string, req map[string]any) (int, string) {
		q, _ := req["query"].(map[string]any)
		tok, _ := q["token"].(string)
		if n, _ := strconv.Atoi(strings.TrimPrefix(tok, "u")); n%10 == 0 {
			return 200, `{"error":{"status":403,"message":"not today"}}`
		}
		return 200, `{"result":{"user":"` + tok + `","topics":["` + tok + `.>"]}}`
	})
}

// 1,000 clients connect through the connect hook as fast as the server
// accepts them: every one is welcomed or refused as the backend decided.
func TestHookConnectMany(t *testing.T) {
	const n = 1000
	be := connectBackend(t)
	s := startServer(t, "-push-interval", "1s", "-proxy-connect", be.url("/connect"), "-accept-rate", "0")
	acc, ref, took := connectRun(t, s.ws, n, 50)
	if acc != n-n/10 || ref != n/10 {
		t.Fatalf("accepted %d refused %d, want %d and %d", acc, ref, n-n/10, n/10)
	}
	plain := startServer(t, "-push-interval", "1s", "-accept-rate", "0")
	pacc, _, ptook := connectRun(t, plain.ws, n, 50)
	if pacc != n {
		t.Fatalf("without the hook: %d of %d welcomed", pacc, n)
	}
	t.Logf("%d connects: with the connect hook %v (%.0f/s: %d accepted, %d refused), without %v (%.0f/s)", n,
		took.Round(time.Millisecond), n/took.Seconds(), acc, ref, ptook.Round(time.Millisecond), n/ptook.Seconds())
}

// WSPUSH_HOOK_10K=1: 10,000 clients connect through the connect hook to
// the built server in its own process (20,000 sockets do not fit one
// process's 20,000 files); with and without the hook.
func TestHookConnect10k(t *testing.T) {
	if os.Getenv("WSPUSH_HOOK_10K") == "" {
		t.Skip("set WSPUSH_HOOK_10K=1 (a measurement run: 10,000 connections)")
	}
	const n = 10_000
	be := connectBackend(t)
	bin := buildServer(t)
	run := func(hook bool) (int64, int64, time.Duration) {
		args := []string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-push-interval", "5s", "-accept-rate", "0"}
		if hook {
			args = append(args, "-proxy-connect", be.url("/connect"))
		}
		ws := startProcess(t, bin, args...)
		return connectRun(t, "ws://"+ws+"/ws", n, 100)
	}
	acc, ref, took := run(true)
	if acc != n-n/10 || ref != n/10 {
		t.Errorf("accepted %d refused %d, want %d and %d", acc, ref, n-n/10, n/10)
	}
	pacc, _, ptook := run(false)
	t.Logf("%d connects: with the connect hook %v (%.0f/s: %d accepted, %d refused), without %v (%.0f/s, %d accepted)", n,
		took.Round(time.Millisecond), n/took.Seconds(), acc, ref, ptook.Round(time.Millisecond), n/ptook.Seconds(), pacc)
}

// startProcess runs the server binary until the test ends and returns its
// WebSocket address.
func startProcess(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	re := regexp.MustCompile(`msg=listening ws=(\S+)`)
	buf := make([]byte, 64<<10)
	var seen []byte
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		k, err := stderr.Read(buf)
		seen = append(seen, buf[:k]...)
		if m := re.FindSubmatch(seen); m != nil {
			go func() { // keep draining
				for {
					if _, err := stderr.Read(buf); err != nil {
						return
					}
				}
			}()
			return string(m[1])
		}
		if err != nil {
			break
		}
	}
	t.Fatalf("no listening line: %s", seen)
	return ""
}
