package scenario

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClusterPresence runs the cluster scenario at a tiny scale with ticks
// and presence — real nats-server, three wspush nodes, wsload publish
// -presence over three topics — and checks that every client's last count
// was its topic's subscribers across all nodes, that ticks carried counts,
// and that the tick phase was measured.
func TestClusterPresence(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := t.TempDir()
	for _, p := range [][2]string{{"wspush", "./server"}, {"wsload", "./loadgen"}} {
		if err := goBuild(ctx, root, filepath.Join(bin, p[0]), p[1]); err != nil {
			t.Fatal(err)
		}
	}
	work := t.TempDir()
	const procs, conns, topics = 3, 300, 3
	port := freeBlock(t, 2*procs)
	c := ClusterConfig{Conns: conns, Procs: procs, MaxConns: 200, Rate: 1000, Publishes: 2, Topics: topics,
		Ticks: 500 * time.Millisecond, Presence: true,
		PubEvery: time.Second, PubAfter: 5 * time.Second, Settle: 3 * time.Second, Grace: 3 * time.Second,
		MinFreeG: 0.5, Port: port, AdminPort: port + procs, Bin: bin}
	e := &Env{Root: root, WorkDir: work, Log: t.Logf}
	r, err := Cluster(ctx, e, c)
	if err != nil {
		t.Fatalf("cluster: %v\n%s", err, tail(filepath.Join(work, "cluster-wsload.log")))
	}
	if !r.AllReached || r.Expected != c.Owed() || r.Expected != 200 {
		t.Errorf("publishes: all reached %v, expected %d (owed %d, want 200)", r.AllReached, r.Expected, c.Owed())
	}
	if !r.PresenceOK || r.PresenceSubs != conns || r.PresenceBadTopics != 0 {
		t.Errorf("presence: ok %v, %d clients checked (want %d), bad %q", r.PresenceOK, r.PresenceSubs, conns, r.PresenceBad)
	}
	if p := r.PresenceProtocol; p == nil || p.Nodes != procs || p.MinNodesSeen != procs || p.GoneDrops+p.SilentDrops != 0 {
		t.Errorf("presence protocol %+v, want %d nodes answering, each seeing all, none dropped", p, procs)
	}
	if cv := r.Convergence; cv == nil || !cv.Converged || !cv.ClientCheckAfter || cv.AtS < cv.FromS || cv.Requests < procs*topics {
		t.Errorf("presence convergence %+v: want every node's counts right, a tick before wsload's check", cv)
	}
	if r.PresenceTicks < conns || r.Ticks <= r.PresenceTicks {
		t.Errorf("%d ticks, %d carrying counts: want every client told at least once, and plain ticks too", r.Ticks, r.PresenceTicks)
	}
	p := r.TickPhase
	if p == nil {
		t.Fatal("no tick phase measured")
	}
	// 300 clients, a tick every 500 ms: 600 ticks a second
	if p.TicksPerSec < 400 || p.TicksPerSec > 800 || p.CPUSeconds <= 0 || p.CPUPerTickUS <= 0 || p.ToS > c.PubAfter.Seconds() {
		t.Errorf("tick phase %+v", p)
	}
	if r.RSSTotalPerConn <= r.RSSPerConn {
		t.Errorf("RSS per connection: total %.0f, above idle %.0f", r.RSSTotalPerConn, r.RSSPerConn)
	}
	if left := runningFrom(t, bin, work); len(left) > 0 {
		t.Errorf("still running after Cluster returned: %v", left)
	}
}

func TestClusterPresenceConfig(t *testing.T) {
	c := ClusterConfig{Presence: true, Topics: 100}.WithDefaults()
	if c.Ticks != 5*time.Second {
		t.Errorf("presence without -ticks: push interval %s, want 5s", c.Ticks)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	flags := strings.Join(wsloadFlags(c), " ")
	for _, want := range []string{"-topics 100", "-presence=true"} {
		if !strings.Contains(flags, want) {
			t.Errorf("wsload flags %q lack %q", flags, want)
		}
	}
	if off := (ClusterConfig{}).WithDefaults(); off.Ticks != 0 || !strings.Contains(strings.Join(wsloadFlags(off), " "), "-presence=false") {
		t.Errorf("default run: ticks %s, flags %q", off.Ticks, wsloadFlags(off))
	}
	for _, bad := range []ClusterConfig{
		{Topics: -1},
		{Conns: 10, Procs: 1, Topics: 11},
		{Ticks: time.Millisecond},
		{Ticks: -time.Second},
	} {
		if err := bad.WithDefaults().Validate(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
	// publishes round robin: topic i mod K gets publish i
	for _, tc := range []struct {
		conns, topics, pubs int
		want                int64
	}{{1_000_000, 1, 2, 2_000_000}, {1_000_000, 100, 2, 20_000}, {10, 3, 4, 4 + 3 + 3 + 4}, {5, 10, 2, 2}} {
		if got := (ClusterConfig{Conns: tc.conns, Topics: tc.topics, Publishes: tc.pubs}).Owed(); got != tc.want {
			t.Errorf("owed(%d conns, %d topics, %d publishes) = %d, want %d", tc.conns, tc.topics, tc.pubs, got, tc.want)
		}
	}
}

func TestTickPhase(t *testing.T) {
	a := tickReading{at: 10 * time.Second, cpu: 100, nat: 3, pushes: 1_000}
	b := tickReading{at: 30 * time.Second, cpu: 104, nat: 3.5, pushes: 2_001_000}
	p := tickPhaseOf(a, b)
	if p.FromS != 10 || p.ToS != 30 || p.Ticks != 2_000_000 || p.CPUSeconds != 4 || p.CPUPerTickUS != 2 || p.CPUCores != 0.2 ||
		p.TicksPerSec != 100_000 || p.NATSCPUS != 0.5 {
		t.Errorf("%+v", p)
	}
	var m tickMeter
	if m.phase() != nil {
		t.Error("a phase without readings")
	}
	m.first, m.last, m.n = a, a, 2
	if m.phase() != nil {
		t.Error("a phase without ticks")
	}
	m.last = b
	if got := m.phase(); got == nil || got.Ticks != 2_000_000 {
		t.Errorf("phase %+v", got)
	}
}
