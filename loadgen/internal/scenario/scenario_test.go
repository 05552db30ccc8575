package scenario

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"wspush/loadgen/internal/fakews"
	"wspush/loadgen/result"
)

func run(t *testing.T, scen string, script []fakews.Step, conns int, mod func(*Config)) (*result.Result, *fakews.Server) {
	t.Helper()
	return runWith(t, scen, script, fakews.Options{}, conns, mod)
}

// runWith runs scenario scen against a fakews server with opts, conns
// connections, 1.5 s unless mod changes it.
func runWith(t *testing.T, scen string, script []fakews.Step, opts fakews.Options, conns int, mod func(*Config)) (*result.Result, *fakews.Server) {
	t.Helper()
	return runWithHook(t, scen, script, opts, conns, func(_ *fakews.Server, c *Config) {
		if mod != nil {
			mod(c)
		}
	}, nil)
}

// runWithHook is runWith where mod also sees the server, and during (when
// set) runs alongside the scenario.
func runWithHook(t *testing.T, scen string, script []fakews.Step, opts fakews.Options, conns int,
	mod func(*fakews.Server, *Config), during func(*fakews.Server)) (*result.Result, *fakews.Server) {
	t.Helper()
	srv, err := fakews.StartWith(script, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	cfg := Config{Scenario: scen, URL: srv.URL(), Conns: conns, Rate: 1000, Duration: 1500 * time.Millisecond,
		Pollers: 2, Dialers: 4, Timeout: 5 * time.Second, Procs: 1, Publisher: true}
	mod(srv, &cfg)
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.Log = io.Discard
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	if during != nil {
		wg.Add(1)
		go func() { defer wg.Done(); during(srv) }()
	}
	res, err := r.Execute(ctx)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return res, srv
}

func eq[T comparable](t *testing.T, name string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

func TestTicksSequenceFaults(t *testing.T) {
	t.Parallel()
	// 1 2 [3 missing] 4 5 5(dup) 7 6(reorder) 8 [9..10 missing] 11 -> gaps 3, dups 1, reorders 1
	var script []fakews.Step
	script = append(script, fakews.Step{Welcome: true})
	for _, s := range []uint64{1, 2, 4, 5, 5, 7, 6, 8, 11} {
		script = append(script, fakews.Step{Tick: s, Late: 40 * time.Millisecond})
	}
	const conns = 5
	res, _ := run(t, "ticks", script, conns, nil)
	eq(t, "established", res.ConnsEstablished, int64(conns))
	eq(t, "welcomes", res.Welcomes, int64(conns))
	eq(t, "messages", res.Messages, int64(9*conns))
	eq(t, "gaps", res.Gaps, int64(3*conns))
	eq(t, "duplicates", res.Duplicates, int64(conns))
	eq(t, "reorders", res.Reorders, int64(conns))
	eq(t, "welcome_missing", res.WelcomeMissing, int64(0))
	eq(t, "lag count", res.LagMS.Count, int64(9*conns))
	if res.LagMS.P50 < 40 || res.LagMS.P50 > 1000 {
		t.Errorf("lag p50 = %.2f ms, want >= 40 ms (injected) and sane", res.LagMS.P50)
	}
	if len(res.Errors) != 0 || len(res.Disconnects) != 0 {
		t.Errorf("errors %v disconnects %v, want none", res.Errors, res.Disconnects)
	}
	eq(t, "schema", res.Schema, result.Schema)
}

func TestTicksMissingWelcomeAndSplitFrames(t *testing.T) {
	t.Parallel()
	script := []fakews.Step{{Tick: 1}, {Tick: 2, Split: true}, {Welcome: true}, {Tick: 3}}
	res, _ := run(t, "ticks", script, 3, nil)
	eq(t, "welcome_missing", res.WelcomeMissing, int64(3))
	eq(t, "messages", res.Messages, int64(9))
	eq(t, "gaps", res.Gaps, int64(0))
	eq(t, "duplicates", res.Duplicates, int64(0))
}

func TestDisconnectsClassified(t *testing.T) {
	t.Parallel()
	res, _ := run(t, "ticks", []fakews.Step{{Welcome: true}, {Tick: 1}, {Close: 4008}}, 2, nil)
	eq(t, "disconnects server_close_4008", res.Disconnects["server_close_4008"], int64(2))
	eq(t, "conns_final", res.ConnsFinal, int64(0))
	res, _ = run(t, "connect", []fakews.Step{{Welcome: true}, {Hangup: true}}, 3, nil)
	eq(t, "disconnects eof", res.Disconnects["eof"], int64(3))
}

func TestConnectErrors(t *testing.T) {
	t.Parallel()
	// a closed port: every connect is refused
	srv, err := fakews.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	url := srv.URL()
	srv.Close()
	cfg := Config{Scenario: "connect", URL: url, Conns: 7, Rate: 1000, Duration: 500 * time.Millisecond, Pollers: 1, Dialers: 2}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Execute(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "refused", res.Errors["refused"], int64(7))
	eq(t, "established", res.ConnsEstablished, int64(0))
}

func TestEcho(t *testing.T) {
	t.Parallel()
	res, srv := run(t, "echo", []fakews.Step{{Welcome: true}}, 4, func(c *Config) {
		c.PingRate = 200
		c.Grace = 2 * time.Second
	})
	if res.Sent < 100 {
		t.Fatalf("sent %d pings, want about 300", res.Sent)
	}
	eq(t, "pings answered", srv.Pings.Load(), res.Sent)
	eq(t, "lost", res.Lost, int64(0))
	eq(t, "round trips", res.LagMS.Count, res.Sent)
	eq(t, "expected", res.Expected, res.Sent)
}

// The publisher starts at -pub-after and stops after -pub-count publishes.
func TestPublisherAfterAndCount(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var at []time.Time
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		n := len(at)
		mu.Unlock()
		fmt.Fprintf(w, `{"topic":"t0","seq":%d}`, n)
	}))
	defer api.Close()
	cfg := Config{Scenario: "publish", URL: "ws://127.0.0.1:1/ws", Admin: api.URL, Conns: 1, Rate: 1, Duration: 10 * time.Second,
		Topics: 1, PubRate: 20, PubAfter: 300 * time.Millisecond, PubCount: 3, Procs: 1, Publisher: true}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	r.publisher(ctx, start)
	if ctx.Err() != nil {
		t.Fatal("publisher ran until the deadline instead of stopping after -pub-count")
	}
	mu.Lock()
	defer mu.Unlock()
	eq(t, "publishes", len(at), 3)
	eq(t, "sent", r.sent.Load(), int64(3))
	if len(at) > 0 && at[0].Sub(start) < 300*time.Millisecond {
		t.Errorf("first publish %v after start, want ≥ 300ms (-pub-after)", at[0].Sub(start))
	}
}
