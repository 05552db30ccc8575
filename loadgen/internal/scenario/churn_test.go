package scenario

import (
	"net/http/httptest"
	"testing"
	"time"

	"wspush/loadgen/internal/fakews"
	"wspush/loadgen/result"
)

// runChurn runs churn against a fakews server that serves topics.
func runChurn(t *testing.T, opts fakews.Options, during func(*fakews.Server), mod func(*Config)) (*result.Result, *fakews.Server) {
	t.Helper()
	var api *httptest.Server
	res, srv := runWithHook(t, "churn", []fakews.Step{{Welcome: true}}, opts, 20, func(srv *fakews.Server, c *Config) {
		api = httptest.NewServer(srv.AdminHandler())
		t.Cleanup(api.Close)
		c.Admin = api.URL
		c.Duration = 2 * time.Second
		c.Grace = 3 * time.Second
		c.Topics, c.PubRate, c.ChurnRate = 2, 100, 20
		c.RetryBackoff = 100 * time.Millisecond
		if mod != nil {
			mod(c)
		}
	}, during)
	if res.Expected == 0 {
		t.Fatalf("nothing expected: %+v", res)
	}
	return res, srv
}

// A connection that the server drops (no close frame) is counted in
// disconnects, and the slot reconnects and resumes with since and epoch:
// what was published while it was away is replayed, nothing is lost.
func TestChurnResumesAfterUnplannedDisconnect(t *testing.T) {
	t.Parallel()
	res, _ := runChurn(t, fakews.Options{}, func(srv *fakews.Server) {
		time.Sleep(700 * time.Millisecond)
		if n := srv.Hangup(5); n != 5 {
			t.Errorf("hung up %d connections, want 5", n)
		}
	}, nil)
	// (a connection hung up while wsload was churning it is not counted)
	if n := res.Disconnects["eof"]; n < 1 || n > 5 {
		t.Errorf("disconnects eof = %d, want 1..5", n)
	}
	eq(t, "lost", res.Lost, int64(0))
	eq(t, "gaps", res.Gaps, int64(0))
	eq(t, "conns_final", res.ConnsFinal, int64(20))
	eq(t, "history_gone", res.Errors["history_gone"], int64(0))
}

// wsload closes a churned connection the RFC 6455 way: a close frame, then
// it waits for the server's close frame and for the server to hang up
// first (a client that hangs up at once leaves the server's side racing
// its own close; docs/loadgen.md).
func TestChurnWaitsForTheServerToClose(t *testing.T) {
	t.Parallel()
	res, srv := runChurn(t, fakews.Options{CloseDelay: 30 * time.Millisecond}, nil, nil)
	if srv.ClientCloses.Load() < 20 {
		t.Fatalf("%d churn closes, want about 40", srv.ClientCloses.Load())
	}
	eq(t, "clients that hung up before the server answered", srv.EarlyHangups.Load(), int64(0))
	eq(t, "lost", res.Lost, int64(0))
	eq(t, "disconnects", len(res.Disconnects), 0)
	eq(t, "conns_final", res.ConnsFinal, int64(20))
}

// Slots that are between connections when -duration ends (the server is
// slow to answer their close) reconnect during the grace and get what
// they missed by resuming, rather than counting it as lost.
func TestChurnReconnectsDuringTheGrace(t *testing.T) {
	t.Parallel()
	res, _ := runChurn(t, fakews.Options{CloseDelay: 400 * time.Millisecond}, nil, func(c *Config) {
		c.Topics, c.PubRate, c.ChurnRate = 1, 200, 40
	})
	eq(t, "lost", res.Lost, int64(0))
	eq(t, "gaps", res.Gaps, int64(0))
	eq(t, "conns_final", res.ConnsFinal, int64(20))
}

// A server that does not answer a churn close within -timeout: the socket
// is shut down (close_timeout), and the slot reconnects and resumes.
func TestChurnAbortsAnUnansweredClose(t *testing.T) {
	t.Parallel()
	res, _ := runChurn(t, fakews.Options{CloseDelay: 10 * time.Second}, nil, func(c *Config) {
		c.Timeout = time.Second // also the connect timeout: a loaded machine needs some
		c.Retries = 5
	})
	if res.Errors["close_timeout"] == 0 {
		t.Fatalf("errors %v, want close_timeout", res.Errors)
	}
	eq(t, "lost", res.Lost, int64(0))
	eq(t, "gaps", res.Gaps, int64(0))
	eq(t, "conns_final", res.ConnsFinal, int64(20))
	eq(t, "disconnects", len(res.Disconnects), 0)
}
