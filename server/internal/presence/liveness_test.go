package presence

import (
	"encoding/json"
	"testing"
	"time"

	"wspush/server/internal/bus"
)

type fakeBus map[string]int64

func (b fakeBus) SetRemote(topic string, n int64) { b[topic] = n }
func (b fakeBus) Lookup(name string) *bus.Topic   { return nil }

func reportOf(t *testing.T, r report) []byte {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A node whose own loop did not run for longer than the max lease (its
// process got no CPU) keeps its peers: the silence was its own. One that
// ran on time drops a peer silent for the max lease.
func TestOwnStallDoesNotDropPeers(t *testing.T) {
	for _, stalled := range []bool{true, false} {
		b := fakeBus{}
		tr, err := New(Config{Period: time.Second, Node: "me"}, b, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(1_000_000, 0)
		tr.now = func() time.Time { return now }
		tr.receive(reportOf(t, report{Node: "other", Seq: 1, Reset: true, Counts: map[string]int32{"room.a": 7}}))
		if b["room.a"] != 7 {
			t.Fatalf("remote count %d, want 7", b["room.a"])
		}
		tr.nextPeriod(now)
		if !stalled {
			// On time, every period, with nothing heard from the peer.
			for i := 0; i < 40; i++ {
				now = now.Add(time.Second)
				tr.due = now.UnixNano()
				tr.period(now)
			}
		} else {
			now = now.Add(40 * time.Second) // one period, 40 s late
			tr.period(now)
		}
		_, kept := tr.peers["other"]
		if kept != stalled {
			t.Errorf("stalled %v: peer kept %v after 40 s (max lease 30 s), want %v", stalled, kept, stalled)
		}
		if st := tr.Stats(); stalled && st.Stalls != 1 {
			t.Errorf("stalls %d, want 1", st.Stalls)
		}
	}
}

// A report from a node not known, or after a gap, wants a full report of
// that node only after a period (a full one arriving meanwhile makes it
// moot); a full report clears the want.
func TestFullReportWantedAfterAPeriod(t *testing.T) {
	tr, err := New(Config{Period: time.Second, Node: "me"}, fakeBus{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	tr.now = func() time.Time { return now }
	tr.receive(reportOf(t, report{Node: "b", Seq: 5}))
	p := tr.peers["b"]
	if p == nil || p.want == 0 {
		t.Fatalf("unknown node mid-stream: %+v, want a full report wanted", p)
	}
	tr.receive(reportOf(t, report{Node: "b", Seq: 6, Reset: true}))
	if p.want != 0 {
		t.Fatalf("want %d after a full report, want none", p.want)
	}
	tr.receive(reportOf(t, report{Node: "b", Seq: 8}))
	if p.want == 0 || tr.Stats().Gaps != 1 {
		t.Fatalf("after a gap: want %d, gaps %d", p.want, tr.Stats().Gaps)
	}
}

func TestNodeNameIsASubjectToken(t *testing.T) {
	for _, name := range []string{"a.b", "a*", ">", "a b"} {
		if err := (Config{Node: name}).Validate(); err == nil {
			t.Errorf("node %q accepted", name)
		}
	}
	if err := (Config{Lease: 3 * time.Second, MaxLease: time.Second}).Validate(); err == nil {
		t.Error("max lease under the lease accepted")
	}
}
