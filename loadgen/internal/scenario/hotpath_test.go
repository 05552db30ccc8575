package scenario

import (
	"strconv"
	"testing"
	"time"

	"wspush/loadgen/internal/engine"
	"wspush/loadgen/internal/fakews"
)

// BenchmarkTickPath is wsload's cost per received tick above the socket
// read: parse the tick, check its sequence number and record its lag
// (OnMessage). docs/loadgen.md quotes it.
func BenchmarkTickPath(b *testing.B) {
	const conns = 1024
	r, err := New(Config{Scenario: "ticks", URL: "ws://127.0.0.1:9/ws", Conns: conns, Rate: 1000,
		Duration: time.Second, Pollers: 1, Dialers: 1, Timeout: time.Second, Procs: 1})
	if err != nil {
		b.Fatal(err)
	}
	cs := make([]engine.Conn, conns)
	for i := range cs {
		cs[i].Slot = uint32(i)
		r.state[i].welcomed = true
	}
	due := time.Now().UnixNano()
	var msg []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%conns == 0 { // the next tick of every connection: seq 1, 2, 3…
			msg = strconv.AppendInt(append(strconv.AppendInt(append(msg[:0],
				`{"type":"tick","seq":`...), int64(i/conns+1), 10), `,"due":`...), due, 10)
			msg = append(msg, '}')
		}
		r.OnMessage(&cs[i%conns], msg, due+int64(i%5000)*1000)
	}
	b.StopTimer()
	if s := &r.shards[0]; s.gaps+s.dups+s.reorders+s.errCount != 0 {
		b.Fatalf("gaps %d dups %d reorders %d errors %v", s.gaps, s.dups, s.reorders, s.errs)
	}
}

// TestTicksReadBatch: with -read-batch every tick still arrives, in order,
// split frames included, and the lag is at most the pause more.
func TestTicksReadBatch(t *testing.T) {
	t.Parallel()
	script := []fakews.Step{{Welcome: true}}
	for s := uint64(1); s <= 40; s++ {
		script = append(script, fakews.Step{Tick: s, Split: s%7 == 0})
	}
	const conns = 20
	res, _ := run(t, "ticks", script, conns, func(c *Config) { c.ReadBatch = 2 * time.Millisecond })
	eq(t, "messages", res.Messages, int64(40*conns))
	eq(t, "gaps", res.Gaps, 0)
	eq(t, "duplicates", res.Duplicates, 0)
	eq(t, "reorders", res.Reorders, 0)
	eq(t, "welcome_missing", res.WelcomeMissing, 0)
	if len(res.Errors) != 0 || len(res.Disconnects) != 0 {
		t.Errorf("errors %v disconnects %v, want none", res.Errors, res.Disconnects)
	}
}

// TestConnectLast: connect_last_s is when the last upgrade of the ramp
// completed: after the open-loop schedule's last slot (conns/rate), well
// before the end of the run.
func TestConnectLast(t *testing.T) {
	t.Parallel()
	const conns = 200 // at 1000/s: the last slot is due at 0.199 s (the ramp dials up to 1 ms early)
	res, _ := run(t, "connect", []fakews.Step{{Welcome: true}}, conns, nil)
	eq(t, "established", res.ConnsEstablished, int64(conns))
	if res.ConnectLastS < 0.198 || res.ConnectLastS > 1.4 {
		t.Fatalf("connect_last_s = %.6f, want in [0.198, 1.4)", res.ConnectLastS)
	}
}
