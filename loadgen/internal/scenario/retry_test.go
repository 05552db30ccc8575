package scenario

import (
	"context"
	"runtime"
	"testing"
	"time"

	"wspush/loadgen/internal/engine"
	"wspush/loadgen/internal/fakews"
)

func TestRetryDelay(t *testing.T) {
	const b = time.Second
	for _, c := range []struct {
		attempt  int
		ra       time.Duration
		min, max time.Duration // at u = 0 and u → 1
	}{
		{1, 0, 500 * time.Millisecond, 1500 * time.Millisecond},
		{2, 0, time.Second, 3 * time.Second},
		{3, 0, 2 * time.Second, 6 * time.Second},
		{6, 0, 15 * time.Second, 45 * time.Second}, // 32 s capped at 30 s
		{255, 0, 15 * time.Second, 45 * time.Second},
		{1, 2 * time.Second, 2 * time.Second, 3 * time.Second}, // Retry-After: never earlier
		{4, 2 * time.Second, 2 * time.Second, 3 * time.Second}, // and no backoff on top
	} {
		lo := retryDelay(c.attempt, b, c.ra, 0)
		hi := retryDelay(c.attempt, b, c.ra, 0.999999)
		if lo != c.min || hi > c.max || hi < c.max-time.Millisecond {
			t.Errorf("attempt %d, Retry-After %v: delay %v..%v, want %v..%v", c.attempt, c.ra, lo, hi, c.min, c.max)
		}
	}
	for class, want := range map[string]bool{
		engine.ClassRefused: true, engine.ClassTimeout: true, engine.ClassRejected: true,
		engine.ClassBadHandshake: true, engine.ClassReset: true, engine.ClassOther: true,
		engine.ClassFDLimit: false, engine.ClassPortExhaustion: false,
	} {
		if retryable(class) != want {
			t.Errorf("retryable(%q) = %v, want %v", class, !want, want)
		}
	}
}

// The server refuses the first 3 upgrades with 503 + Retry-After: 1; with
// -retries 3 every connection ends up established, each refused slot
// retried once and not before the second the server asked for.
func TestRetriesAfterRejection(t *testing.T) {
	t.Parallel()
	const conns, refuse = 8, 3
	res, srv := runWith(t, "connect", []fakews.Step{{Welcome: true}}, fakews.Options{Refuse: refuse, RetryAfter: "1"}, conns,
		func(c *Config) {
			c.Retries = 3
			c.RetryBackoff = 10 * time.Millisecond // far below Retry-After: must not be used
			c.Duration = 3 * time.Second
		})
	eq(t, "established", res.ConnsEstablished, int64(conns))
	eq(t, "conns_final", res.ConnsFinal, int64(conns))
	eq(t, "errors rejected", res.Errors["rejected"], int64(refuse))
	eq(t, "errors classes", len(res.Errors), 1)
	eq(t, "retries", res.Retries, int64(refuse))
	eq(t, "server upgrades", srv.Conns.Load(), int64(conns))
	eq(t, "server refusals", srv.Refused.Load(), int64(refuse))
	eq(t, "params retries", res.Params.Retries, 3)
	refused, upgraded := srv.Times()
	if len(refused) != refuse {
		t.Fatalf("%d refusals recorded", len(refused))
	}
	late := 0
	for _, u := range upgraded {
		if u.Sub(refused[0]) >= time.Second {
			late++
		}
	}
	if late < refuse {
		t.Errorf("%d upgrades came ≥ 1 s after the first refusal, want ≥ %d (Retry-After: 1 ignored?)", late, refuse)
	}
}

// Retry-After: 0 means no hint: the exponential backoff applies. 6
// refusals over 3 slots land on them at random; -retries 6 is enough for
// any split, so every refusal costs exactly one retry.
func TestRetriesBackoffWithoutHint(t *testing.T) {
	t.Parallel()
	const conns, refuse = 3, 6
	res, srv := runWith(t, "connect", []fakews.Step{{Welcome: true}}, fakews.Options{Refuse: refuse, RetryAfter: "0", RefuseStatus: 429}, conns,
		func(c *Config) {
			c.Retries = refuse
			c.RetryBackoff = 10 * time.Millisecond
			c.Duration = 2500 * time.Millisecond
		})
	eq(t, "established", res.ConnsEstablished, int64(conns))
	eq(t, "errors rejected", res.Errors["rejected"], int64(refuse))
	eq(t, "retries", res.Retries, int64(refuse))
	eq(t, "server requests", srv.Requests.Load(), int64(conns+refuse))
}

// -retries 0 (the default) keeps the old behaviour: a refused slot stays
// empty.
func TestNoRetriesByDefault(t *testing.T) {
	t.Parallel()
	const conns, refuse = 6, 2
	res, srv := runWith(t, "connect", []fakews.Step{{Welcome: true}}, fakews.Options{Refuse: refuse, RetryAfter: "0"}, conns,
		func(c *Config) { c.Duration = time.Second })
	eq(t, "established", res.ConnsEstablished, int64(conns-refuse))
	eq(t, "conns_final", res.ConnsFinal, int64(conns-refuse))
	eq(t, "errors rejected", res.Errors["rejected"], int64(refuse))
	eq(t, "retries", res.Retries, int64(0))
	eq(t, "server requests", srv.Requests.Load(), int64(conns))
}

// ECONNREFUSED is retried too, and a slot gives up after -retries.
func TestRetriesBounded(t *testing.T) {
	t.Parallel()
	srv, err := fakews.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	url := srv.URL()
	srv.Close() // a closed port: every connect is refused
	const conns, retries = 5, 2
	cfg := Config{Scenario: "connect", URL: url, Conns: conns, Rate: 1000, Duration: time.Second, Pollers: 1, Dialers: 2,
		Retries: retries, RetryBackoff: 20 * time.Millisecond}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Execute(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "refused", res.Errors["refused"], int64(conns*(1+retries)))
	eq(t, "retries", res.Retries, int64(conns*retries))
	eq(t, "established", res.ConnsEstablished, int64(0))
}

// Retries still waiting when -duration ends are dropped: Execute returns
// on time and leaves no goroutine behind.
func TestRetriesStopWithRun(t *testing.T) {
	// not parallel: it counts goroutines
	before := runtime.NumGoroutine()
	srv, err := fakews.StartWith(nil, fakews.Options{Refuse: 1 << 30, RetryAfter: "30"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Scenario: "connect", URL: srv.URL(), Conns: 20, Rate: 1000, Duration: 700 * time.Millisecond, Pollers: 1, Dialers: 4,
		Retries: 5}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := r.Execute(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Execute took %v with retries pending, want about 0.7 s", took)
	}
	eq(t, "rejected", res.Errors["rejected"], int64(20))
	eq(t, "retries", res.Retries, int64(0)) // all due after the end
	srv.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after the run, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
