package scenario

import (
	"testing"
	"time"

	"wspush/loadgen/internal/engine"
	"wspush/server/wire"
)

var welcomeSeeds = []string{
	string(wire.AppendWelcome(nil, "c1", 5000, 1700000000000000000, "Welcome to the server!")),
	string(wire.AppendWelcome(nil, "c2", 0, 0, "")),
	string(wire.AppendWelcome(nil, "é", -1, -5, "x y")),
	`{"type":"welcome","id":"c1a","interval_ms":100,"text":"Welcome to the server!"}`, // the floor peer's
	// not the exact form: left to encoding/json
	`{"type":"welcome","id":"c\"1","interval_ms":1,"text":"x"}`,
	`{"type":"welcome","id":"c1","interval_ms":01,"text":"x"}`,
	`{"type":"welcome","id":"c1","interval_ms":1,"text":"x"} `,
	`{"type":"welcome","id":"c1","interval_ms":1,"text":"x","type":"tick"}`,
	`{"type":"welcome","id":"c1","interval_ms":9999999999999999999,"text":"x"}`,
	`{"type":"welcome","id":"c1","interval_ms":-,"text":"x"}`,
	"{\"type\":\"welcome\",\"id\":\"c\x01\",\"interval_ms\":1,\"text\":\"x\"}",
	`{"type":"welcome","id":"c1","interval_ms":1,"first_due":,"text":"x"}`,
	`{"type":"welcome","id":"c1","interval_ms":1,"text":"x"`,
	`{"type":"welcome","id":"c1"}`,
	`{"type":"welcome", "id":"c1","interval_ms":1,"text":"x"}`,
	`{"type":"tick","seq":1,"due":1}`,
}

// TestIsWelcome: the welcomes wspush and the peers write take the fast
// path; the odd forms do not.
func TestIsWelcome(t *testing.T) {
	for i, s := range welcomeSeeds {
		if got, want := isWelcome([]byte(s)), i < 4; got != want {
			t.Errorf("isWelcome(%s) = %v, want %v", s, got, want)
		}
	}
}

// FuzzIsWelcome: whatever isWelcome accepts, encoding/json (through
// wire.ParseServer, the reference) decodes as a welcome.
func FuzzIsWelcome(f *testing.F) {
	for _, s := range welcomeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if !isWelcome(p) {
			return
		}
		var m wire.ServerMsg
		if err := wire.ParseServer(p, &m); err != nil || m.Type != wire.TypeWelcome {
			t.Fatalf("isWelcome(%q) but ParseServer: type %q, %v", p, m.Type, err)
		}
	})
}

// TestWelcomeNoAllocs: a connection's welcome costs OnMessage no
// allocation (encoding/json made two or more).
func TestWelcomeNoAllocs(t *testing.T) {
	const conns = 1000
	r, err := New(Config{Scenario: "connect", URL: "ws://127.0.0.1:9/ws", Conns: conns, Rate: 1000,
		Duration: time.Second, Pollers: 1, Dialers: 1, Timeout: time.Second, Procs: 1})
	if err != nil {
		t.Fatal(err)
	}
	cs := make([]engine.Conn, conns)
	for i := range cs {
		cs[i].Slot = uint32(i)
	}
	msg := wire.AppendWelcome(nil, "c1", 5000, time.Now().UnixNano(), "Welcome to the server!")
	i := 0
	if a := testing.AllocsPerRun(conns-1, func() { r.OnMessage(&cs[i], msg, 0); i++ }); a != 0 {
		t.Fatalf("%.1f allocations per welcome", a)
	}
	if s := &r.shards[0]; s.welcomes != int64(i) || s.errCount != 0 {
		t.Fatalf("welcomes %d of %d, errors %d", s.welcomes, i, s.errCount)
	}
}
