package main

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestIdleConnectionIsOneGatewayAllocation holds idle connections open and
// counts, with a heap profile of every allocation, the objects that the
// gateway and the hub allocated and keep per connection: the session
// holds the hub client and the frame guard, and the guard's data handler
// is one func value for all connections: that is the session and the
// executor func value the edge puts back after the upgrade, two objects
// (five before: client, session, guard, its closure, the func value). nbio's own (its Conn, the websocket.Conn, the addresses) are not
// counted: they are allocated in nbio and net.
func TestIdleConnectionGatewayAllocations(t *testing.T) {
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = old }()

	s := startServer(t, "-push-interval", "1h", "-ping-interval", "0", "-idle-timeout", "0",
		"-accept-rate", "0", "-max-conns-per-ip", "0")
	warm := dial(t, s.ws) // the first connection grows what is made once
	next(t, warm, 5*time.Second)

	before := ownObjects()
	const n = 300
	for range n {
		c := dial(t, s.ws)
		if m := next(t, c, 5*time.Second); m.Type != "welcome" {
			t.Fatalf("first message %q, want welcome", m.Type)
		}
	}
	after := ownObjects()

	var objs, bytes int64
	for site, a := range after {
		b := before[site]
		objs += a.objs - b.objs
		bytes += a.bytes - b.bytes
		if d := a.objs - b.objs; d >= n/2 {
			t.Logf("%s: %.2f objects, %.0f B per connection", site, float64(d)/n, float64(a.bytes-b.bytes)/n)
		}
	}
	perConn := float64(objs) / n
	t.Logf("gateway and hub: %.2f objects, %.0f B kept per idle connection", perConn, float64(bytes)/n)
	if perConn > 2.5 {
		t.Fatalf("gateway and hub keep %.2f objects per idle connection, want 2 (the session, the executor)", perConn)
	}
}

type inUse struct{ objs, bytes int64 }

// ownObjects returns the objects in use by allocation site (the innermost
// frame outside the runtime), for sites in the gateway and hub packages.
func ownObjects() map[string]inUse {
	// The profile is as of the last completed collection; two make it
	// include everything freed before this call.
	runtime.GC()
	runtime.GC()
	var recs []runtime.MemProfileRecord
	for {
		n, ok := runtime.MemProfile(recs, true)
		if ok {
			recs = recs[:n]
			break
		}
		recs = make([]runtime.MemProfileRecord, n+100)
	}
	out := map[string]inUse{}
	for i := range recs {
		r := &recs[i]
		frames := runtime.CallersFrames(r.Stack())
		for {
			f, more := frames.Next()
			if !strings.HasPrefix(f.Function, "runtime.") {
				if strings.HasPrefix(f.Function, "wspush/server/internal/gateway.") ||
					strings.HasPrefix(f.Function, "wspush/server/internal/hub.") {
					u := out[f.Function]
					u.objs += r.InUseObjects()
					u.bytes += r.InUseBytes()
					out[f.Function] = u
				}
				break
			}
			if !more {
				break
			}
		}
	}
	return out
}
