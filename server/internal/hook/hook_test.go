package hook

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wspush/server/internal/metrics"
)

func started(t *testing.T, cfg Config, limit *Limit) *Caller {
	t.Helper()
	c, err := New("test", cfg, limit, metrics.New(func() int64 { return 0 }).Registry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

type result struct {
	body []byte
	err  error
}

func call(t *testing.T, c *Caller, body string) result {
	t.Helper()
	ch := make(chan result, 1)
	if err := c.Call([]byte(body), func(b []byte, err error) { ch <- result{b, err} }); err != nil {
		return result{err: err}
	}
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
		return result{}
	}
}

func TestConfigRefusesNonHTTP(t *testing.T) {
	for _, u := range []string{"", "ftp://x/y", "file:///etc/passwd", "http://", "127.0.0.1:80/x"} {
		if _, err := New("x", Config{URL: u}, nil, nil); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}

func TestCallRoundTripReusesConnections(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write([]byte(`{"result":` + string(b) + `}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := started(t, Config{URL: srv.URL, Concurrency: 4}, nil)
	for i := 0; i < 100; i++ {
		r := call(t, c, `[1]`)
		if r.err != nil || string(r.body) != `{"result":[1]}` {
			t.Fatalf("call %d: %s %v", i, r.body, r.err)
		}
	}
	if n := conns.Load(); n > 4 {
		t.Fatalf("%d connections for 100 sequential calls, want keep-alive reuse", n)
	}
	if c.Count(resultOK) != 100 {
		t.Fatalf("ok count %d", c.Count(resultOK))
	}
}

func TestQueueFullIsOverloadedAtOnce(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	defer close(release)
	c := started(t, Config{URL: srv.URL, Concurrency: 1, Queue: 2, Timeout: 5 * time.Second}, nil)
	var wg sync.WaitGroup
	accepted := 0
	for i := 0; i < 10; i++ {
		wg.Add(1)
		if err := c.Call([]byte(`1`), func([]byte, error) { wg.Done() }); err != nil {
			wg.Done()
			if !errors.Is(err, ErrOverloaded) {
				t.Fatalf("call %d: %v", i, err)
			}
			continue
		}
		accepted++
		if i == 0 {
			time.Sleep(100 * time.Millisecond) // the worker holds call 0
		}
	}
	if accepted != 3 { // one in flight, two queued
		t.Fatalf("%d calls accepted, want 3", accepted)
	}
	if c.Count(resultOverloaded) != 7 {
		t.Fatalf("overloaded count %d", c.Count(resultOverloaded))
	}
}

func TestTimeoutThenBreakerThenHalfOpen(t *testing.T) {
	var slow atomic.Bool
	slow.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			time.Sleep(300 * time.Millisecond)
		}
		_, _ = w.Write([]byte(`{"result":1}`))
	}))
	defer srv.Close()
	c := started(t, Config{URL: srv.URL, Timeout: 50 * time.Millisecond, BreakerFailures: 3, BreakerCooldown: 200 * time.Millisecond}, nil)
	for i := 0; i < 3; i++ {
		if r := call(t, c, `1`); !errors.Is(r.err, ErrTimeout) {
			t.Fatalf("call %d: %v, want timeout", i, r.err)
		}
	}
	if r := call(t, c, `1`); !errors.Is(r.err, ErrUnavailable) || !strings.Contains(r.err.Error(), "breaker") {
		t.Fatalf("after 3 timeouts: %v, want the open breaker", r.err)
	}
	if c.br.current() != stateOpen {
		t.Fatalf("state %d", c.br.current())
	}
	time.Sleep(250 * time.Millisecond)
	// Half-open: the probe fails, so it opens again.
	if r := call(t, c, `1`); !errors.Is(r.err, ErrTimeout) {
		t.Fatalf("probe: %v, want timeout", r.err)
	}
	if r := call(t, c, `1`); !errors.Is(r.err, ErrUnavailable) {
		t.Fatalf("after a failed probe: %v, want open", r.err)
	}
	slow.Store(false)
	time.Sleep(250 * time.Millisecond)
	if r := call(t, c, `1`); r.err != nil {
		t.Fatalf("probe to a healthy backend: %v", r.err)
	}
	if c.br.current() != stateClosed {
		t.Fatalf("state %d after a good probe, want closed", c.br.current())
	}
}

func TestBadResponses(t *testing.T) {
	bodies := map[string]struct {
		status int
		body   string
	}{"/500": {500, `{}`}, "/html": {200, `<html>`}, "/big": {200, `"` + strings.Repeat("x", 200) + `"`}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := bodies[r.URL.Path]
		w.WriteHeader(b.status)
		_, _ = w.Write([]byte(b.body))
	}))
	defer srv.Close()
	for path := range bodies {
		c, err := New(path, Config{URL: srv.URL + path, MaxResponseBytes: 100}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { _ = c.Run(ctx) }()
		if r := call(t, c, `1`); !errors.Is(r.err, ErrBadResponse) {
			t.Errorf("%s: %v, want a bad response", path, r.err)
		}
		cancel()
	}
}

func TestTotalLimitIsShared(t *testing.T) {
	var inFlight, peak atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		inFlight.Add(-1)
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	limit := NewLimit(3)
	a := started(t, Config{URL: srv.URL, Concurrency: 4}, limit)
	b := started(t, Config{URL: srv.URL, Concurrency: 4}, limit)
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		c := a
		if i%2 == 1 {
			c = b
		}
		if err := c.Call([]byte(`1`), func(_ []byte, err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if p := peak.Load(); p > 3 {
		t.Fatalf("%d calls in flight over two hooks, want at most the shared 3", p)
	}
}

func TestParseAnswer(t *testing.T) {
	for in, ok := range map[string]bool{
		`{"result":1}`: true, `{"result":{"a":1}}`: true, `{"error":{"code":"x_1","message":"m"}}`: true, `{"error":{}}`: true,
		`{}`: false, `{"result":null}`: false, `{"result":1,"error":{}}`: false, `[1]`: false, `{"error":{"code":"Bad Code"}}`: false,
		`{"error":"x"}`: false, ``: false,
	} {
		if _, err := ParseAnswer([]byte(in)); (err == nil) != ok || err != nil && !errors.Is(err, ErrBadResponse) {
			t.Errorf("%s: %v, want ok=%v", in, err, ok)
		}
	}
}
