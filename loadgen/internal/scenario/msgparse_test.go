package scenario

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"wspush/loadgen/internal/engine"
	"wspush/loadgen/internal/fakews"
	"wspush/server/wire"
)

func TestParseMsgAgreesWithJSON(t *testing.T) {
	t.Parallel()
	good := []string{
		`{"type":"msg","topic":"t0","seq":1,"ts":1700000000000000000,"data":{"n":0}}`,
		`{"type":"msg","topic":"","seq":42,"ts":-5,"data":"x}"}`,
		`{"type":"msg","topic":"a.b:c","seq":9999999999999999999,"ts":0,"data":[1,2]}`,
		string(wire.AppendMsg(nil, "room-1", 7, 123456789, []byte(`{"k":"v"}`))),
	}
	for _, s := range good {
		seq, ts, ok := parseMsg([]byte(s))
		var tm topicMsg
		if err := json.Unmarshal([]byte(s), &tm); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if !ok || seq != tm.Seq || ts != tm.TS {
			t.Errorf("parseMsg(%s) = %d, %d, %v; want %d, %d, true", s, seq, ts, ok, tm.Seq, tm.TS)
		}
	}
	// not the exact form: left to encoding/json
	for _, s := range []string{
		`{"type":"msg","topic":"t\"0","seq":1,"ts":1,"data":1}`,
		`{"type":"msg", "topic":"t0","seq":1,"ts":1,"data":1}`,
		`{"type":"msg","topic":"t0","seq":18446744073709551615,"ts":1,"data":1}`,
		`{"type":"msg","topic":"t0","seq":1,"ts":99999999999999999999,"data":1}`,
		`{"type":"msg","topic":"t0","seq":1,"ts":1,"data":}`,
		`{"type":"msg","topic":"t0","seq":1,"ts":1}`,
		`{"type":"msg","topic":"t0","seq":,"ts":1,"data":1}`,
		`{"type":"msg","topic":"t0`,
		`{"type":"subscribed","topic":"t0","seq":1}`,
		`{"type":"tick","seq":1,"due":1}`,
	} {
		if _, _, ok := parseMsg([]byte(s)); ok {
			t.Errorf("parseMsg(%s) ok, want a fallback", s)
		}
	}
}

// TestBroadcastCounted: with -broadcast the clients send no sub and the
// topic-less broadcasts count as deliveries, sequence-checked and timed,
// also those that come right behind the welcome (with the 101).
func TestBroadcastCounted(t *testing.T) {
	t.Parallel()
	frame := func(seq uint64) []byte {
		ts := time.Now().Add(-30 * time.Millisecond).UnixNano()
		return wire.EndFrame(wire.AppendMsg(wire.BeginFrame(nil), wire.BroadcastTopic, seq, ts, []byte(`{"n":1}`)), wire.OpText)
	}
	script := []fakews.Step{{Welcome: true}, {Raw: frame(1)}, {Raw: frame(2)}, {Raw: frame(4)}}
	const conns = 4
	res, _ := run(t, "publish", script, conns, func(c *Config) {
		c.Broadcast, c.Topics, c.Admin, c.PubRate = true, 1, "http://127.0.0.1:9", 10
	})
	eq(t, "established", res.ConnsEstablished, int64(conns))
	eq(t, "messages", res.Messages, int64(3*conns))
	eq(t, "gaps", res.Gaps, int64(conns))
	eq(t, "lag count", res.LagMS.Count, int64(3*conns))
	eq(t, "publishes sent", res.Sent, int64(0))
	if len(res.Errors) != 0 {
		t.Errorf("errors %v, want none", res.Errors)
	}
}

// BenchmarkMsgPath is wsload's cost per received topic message or
// broadcast above the socket read (OnMessage), as BenchmarkTickPath is
// for ticks.
func BenchmarkMsgPath(b *testing.B) {
	const conns = 1024
	r, err := New(Config{Scenario: "publish", URL: "ws://127.0.0.1:9/ws", Admin: "http://127.0.0.1:9", Topics: 1, Conns: conns, Rate: 1000,
		Duration: time.Second, Pollers: 1, Dialers: 1, Timeout: time.Second, Procs: 1})
	if err != nil {
		b.Fatal(err)
	}
	cs := make([]engine.Conn, conns)
	for i := range cs {
		cs[i].Slot = uint32(i)
		r.state[i].welcomed, r.state[i].subbed = true, true
	}
	ts := time.Now().UnixNano()
	msgs := make([][]byte, 64)
	for i := range msgs {
		msgs[i] = []byte(`{"type":"msg","topic":"t0","seq":` + strconv.Itoa(i+1) + `,"ts":` + strconv.FormatInt(ts, 10) + `,"data":{"n":` + strconv.Itoa(i) + `}}`)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := &cs[i%conns]
		k := (i / conns) % len(msgs)
		r.OnMessage(c, msgs[k], ts+int64(i%5000)*1000)
	}
}
