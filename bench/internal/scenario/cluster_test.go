package scenario

import (
	"context"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestClusterEveryClientGetsEveryPublish runs the cluster scenario at a
// tiny scale with the real binaries — nats-server built from go.mod, two
// wspush nodes joined by it, wsload publish — and checks that every
// connection received every publish exactly once, and that nothing the
// run started is left running afterwards.
func TestClusterEveryClientGetsEveryPublish(t *testing.T) {
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
	const procs, conns, publishes = 2, 300, 2
	port := freeBlock(t, 2*procs)
	c := ClusterConfig{Conns: conns, Procs: procs, MaxConns: 200, Rate: 1000, Publishes: publishes,
		PubEvery: time.Second, PubAfter: 3 * time.Second, Settle: 2 * time.Second, Grace: 3 * time.Second,
		MinFreeG: 0.5, Port: port, AdminPort: port + procs, Bin: bin}
	e := &Env{Root: root, WorkDir: work, Log: t.Logf}
	t0 := time.Now()
	r, err := Cluster(ctx, e, c)
	t.Logf("cluster run took %s", time.Since(t0).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("cluster: %v\n%s", err, tail(filepath.Join(work, "cluster-wsload.log")))
	}

	want := int64(conns * publishes)
	check := func(what string, got, want int64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %d, want %d", what, got, want)
		}
	}
	check("publishes acknowledged", r.PublishesSent, publishes)
	check("connections at the first publish (nodes' count)", int64(r.AtPublish), conns)
	check("connections established", r.Established, conns)
	check("expected deliveries", r.Expected, want)
	check("deliveries", r.Deliveries, want)
	check("lost", r.Lost, 0)
	check("gaps", r.Gaps, 0)
	check("duplicates", r.Duplicates, 0)
	check("history_gone", r.HistoryGone, 0)
	check("latency samples", r.LatencyMS.Count, want)
	if !r.AllReached {
		t.Error("AllReached is false")
	}
	if len(r.Disconnects) > 0 {
		t.Errorf("disconnects %v", r.Disconnects)
	}
	// Every connection the nodes closed was closed by wsload at the end.
	check("closes by the nodes (client went first)", r.NodeCloses["client"], conns)
	for why, n := range r.NodeCloses {
		if why != "client" {
			t.Errorf("nodes closed %d connections for %q", n, why)
		}
	}
	var inWindows int64
	for _, w := range r.PerPublish {
		inWindows += w.Deliveries
	}
	if len(r.PerPublish) != publishes || inWindows != want {
		t.Errorf("per-publish windows %+v: %d deliveries, want %d in %d windows", r.PerPublish, inWindows, want, publishes)
	}
	if r.NATSVersion != "v2.15.2" {
		t.Errorf("nats-server version %q, want the one pinned in go.mod (v2.15.2)", r.NATSVersion)
	}
	if r.NodesRSS <= 0 || r.NodesRSSPeak < r.NodesRSS || r.NATSRSSPeak <= 0 || r.Wsload == nil {
		t.Errorf("memory or raw wsload result not recorded: nodes %d peak %d, nats %d, wsload %d bytes", r.NodesRSS, r.NodesRSSPeak, r.NATSRSSPeak, len(r.Wsload))
	}

	// everything the run started is gone: no process runs from the
	// binaries or the work directory, the ports are free, the JetStream
	// directory is removed
	if left := runningFrom(t, bin, work); len(left) > 0 {
		t.Errorf("still running after Cluster returned: %v", left)
	}
	if err := portsFree(c); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(work, "nats-store")); !os.IsNotExist(err) {
		t.Errorf("nats-store left behind: %v", err)
	}
}

func TestClusterConfig(t *testing.T) {
	c := ClusterConfig{}.WithDefaults()
	if c.Conns != 1_000_000 || c.Procs != 60 || c.MaxConns != 17000 || c.Rate != 4000 || c.Publishes != 2 ||
		c.PubEvery != time.Minute || c.Sources != "127.0.0.2-127.0.0.60" || c.MinFreeG != 16 || c.Port != 9000 || c.AdminPort != 10000 {
		t.Fatalf("defaults %+v", c)
	}
	// 1M / 4000/s = 250 s of ramp; × 1.25 + 20 s
	if c.PubAfter != 333*time.Second || c.Duration() != 333*time.Second+2*time.Minute+30*time.Second {
		t.Fatalf("pub-after %s, duration %s", c.PubAfter, c.Duration())
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	flags := strings.Join(wsloadFlags(c), " ")
	for _, want := range []string{"-url ws://127.0.0.1:9000-9059/ws", "-admin http://127.0.0.1:10000", "-topics 1",
		"-pub-after 5m33s", "-pub-count 2", "-pub-rate 0.016666666666666666", "-procs auto", "-retries 5", "-grace 1m0s"} {
		if !strings.Contains(flags, want) {
			t.Errorf("wsload flags %q lack %q", flags, want)
		}
	}
	for _, bad := range []ClusterConfig{
		{Conns: 1_000_000, Procs: 50},           // 50 × 17000 < 1M
		{Procs: 2, Port: 9000, AdminPort: 9001}, // port ranges overlap
		{Grace: 2 * time.Minute},                // over wsload's limit
	} {
		if err := bad.WithDefaults().Validate(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// freeBlock returns the first of n consecutive free loopback ports, below
// the kernel's ephemeral range.
func freeBlock(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 100; try++ {
		base := 20000 + rand.IntN(12000-n)
		free := true
		for p := base; p < base+n && free; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				free = false
				continue
			}
			_ = l.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no block of free ports")
	return 0
}

// runningFrom lists the processes whose executable lies under one of dirs.
func runningFrom(t *testing.T, dirs ...string) []string {
	t.Helper()
	for i, d := range dirs {
		if r, err := filepath.EvalSymlinks(d); err == nil {
			dirs[i] = r
		}
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue
		}
		for _, d := range dirs {
			if strings.HasPrefix(exe, d+string(filepath.Separator)) {
				out = append(out, e.Name()+" "+exe)
			}
		}
	}
	return out
}

// tail is the end of a log file, for failure messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
