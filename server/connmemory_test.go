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
// is one func value for all connections; the executor func value put back
// after the upgrade is the one nbio made for the parser. That is one
// object, the session (five before: client, session, guard, its closure,
// a func value). nbio's own (its Conn, the websocket.Conn, the addresses,
// which the gateway packs: gateway.packAddr) are not counted here but in
// TestIdleConnectionServerHeap.
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
		if site == "wspush/server/internal/gateway.packAddr" {
			continue // nbio's addresses, packed (addrs.go)
		}
		b := before[site]
		objs += a.objs - b.objs
		bytes += a.bytes - b.bytes
		if d := a.objs - b.objs; d >= n/2 {
			t.Logf("%s: %.2f objects, %.0f B per connection", site, float64(d)/n, float64(a.bytes-b.bytes)/n)
		}
	}
	perConn := float64(objs) / n
	t.Logf("gateway and hub: %.2f objects, %.0f B kept per idle connection", perConn, float64(bytes)/n)
	if perConn > 1.5 {
		t.Fatalf("gateway and hub keep %.2f objects per idle connection, want 1 (the session)", perConn)
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

// TestIdleConnectionServerHeap holds idle connections and sums, with a
// heap profile of every allocation, all that the server keeps per
// connection (nbio's objects, the addresses, the gateway's session, the
// wheel's slots, nbio's maps), leaving out the test's own client side.
// Before the round that made it: about 890 B (the session in the 288 B
// class, nbio's two *net.TCPAddr and their sockaddrs 160 B, a second
// executor func value 16 B); now about 700 B: nbio.Conn 208,
// websocket.Conn 176, the session 240, nbio's map of connections ~24, the
// packed addresses 16, nbio's executor func value 16 and job list 8, the
// wheel slot 8, and now and then a stopped handshake timer of nbio's.
func TestIdleConnectionServerHeap(t *testing.T) {
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = old }()

	s := startServer(t, "-push-interval", "1h", "-ping-interval", "0", "-idle-timeout", "0",
		"-accept-rate", "0", "-max-conns-per-ip", "0")
	for range 200 { // grow what is made once (the edge's 64 maps, the first timers)
		next(t, dial(t, s.ws), 5*time.Second)
	}
	before := serverSideBytes()
	const n = 500
	for range n {
		c := dial(t, s.ws)
		if m := next(t, c, 5*time.Second); m.Type != "welcome" {
			t.Fatalf("first message %q, want welcome", m.Type)
		}
	}
	after := serverSideBytes()
	var total int64
	for site, a := range after {
		d := a - before[site]
		total += d
		if d >= 4*n {
			t.Logf("%s: %.0f B per connection", site, float64(d)/n)
		}
	}
	perConn := float64(total) / n
	t.Logf("server heap kept per idle connection: %.0f B", perConn)
	if perConn > 760 {
		t.Fatalf("the server keeps %.0f B of heap per idle connection, want at most 760", perConn)
	}
}

// serverSideBytes returns the bytes in use by allocation site (the
// innermost frame outside the runtime) of the objects the server
// allocated: stacks through nbio or the server's packages, and not through
// the test's dialing client.
func serverSideBytes() map[string]int64 {
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
	out := map[string]int64{}
	for i := range recs {
		r := &recs[i]
		frames := runtime.CallersFrames(r.Stack())
		site, server, client := "", false, false
		for {
			f, more := frames.Next()
			switch {
			case site == "" && !strings.HasPrefix(f.Function, "runtime.") && !strings.HasPrefix(f.Function, "internal/runtime/"):
				site = f.Function
			case site == "" && strings.HasPrefix(f.Function, "internal/runtime/maps."):
				site = "map in " // named by the caller that grew it
			case site == "map in " && !strings.HasPrefix(f.Function, "runtime.") && !strings.HasPrefix(f.Function, "internal/runtime/"):
				site += f.Function
			}
			switch {
			case strings.HasPrefix(f.Function, "github.com/gorilla/"), strings.HasPrefix(f.Function, "testing."),
				strings.HasPrefix(f.Function, "wspush/server.dial"), strings.HasPrefix(f.Function, "wspush/server.Test"):
				client = true
			case strings.HasPrefix(f.Function, "github.com/lesismal/nbio"), strings.HasPrefix(f.Function, "wspush/server/internal/"):
				server = true
			}
			if !more {
				break
			}
		}
		if server && !client {
			out[site] += r.InUseBytes()
		}
	}
	return out
}
