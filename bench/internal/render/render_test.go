package render

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"wspush/bench/internal/bclient"
	"wspush/bench/internal/scenario"
	"wspush/loadgen/result"
)

func sample() []*scenario.File {
	t0 := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	targets := []string{"wspush", "gorilla", "floor"}
	ticks := &scenario.File{Schema: scenario.Schema, Scenario: "ticks", Mode: "quick", Started: t0, Finished: t0.Add(time.Minute),
		Conns: 5000, Rate: 4000, Rounds: 1, Targets: targets, Pinning: scenario.Pinning{Server: "0", Load: "1"},
		Ticks: []scenario.TicksResult{
			{Target: "wspush", BestInterval: 200, BestRate: 30000, LagP99MS: 5, CPUPerPush: 9.5,
				Trials: []scenario.TickTrial{{IntervalMS: 316, Pass: true}, {IntervalMS: 200, Pass: true}}},
			{Target: "gorilla", BestInterval: 400, BestRate: 12000, LagP99MS: 8, CPUPerPush: 16},
			{Target: "floor", BestInterval: 150, BestRate: 40000, LagP99MS: 4, CPUPerPush: 7, WsloadBound: true},
		}}
	old := *ticks
	old.Finished = t0.Add(-time.Hour)
	old.Ticks = nil
	idle := &scenario.File{Schema: scenario.Schema, Scenario: "idle", Started: t0, Finished: t0.Add(time.Minute), Conns: 5000, Targets: targets,
		Idle: []scenario.IdleResult{
			{Target: "wspush", N1: 1000, N2: 5000, RSSPerConn: 900, SlabPerConn: 9000},
			{Target: "wspush", Round: 1, N1: 1000, N2: 5000, RSSPerConn: 1100, SlabPerConn: 9000},
			{Target: "gorilla", N1: 1000, N2: 5000, RSSPerConn: 10000},
			{Target: "floor", N1: 1000, N2: 5000, RSSPerConn: 500},
		}}
	bc := &scenario.File{Schema: scenario.Schema, Scenario: "broadcast", Started: t0, Finished: t0.Add(time.Minute), Conns: 5000, Targets: targets,
		Broadcast: []scenario.BroadcastResult{
			{Target: "wspush", Result: &bclient.Result{Connected: 5000, All: bclient.Stats{P50: 10, P99: 20, Max: 25}}},
			{Target: "gorilla", Err: "boom"},
		}}
	return []*scenario.File{&old, ticks, idle, bc}
}

func TestMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := Markdown(&b, sample(), "img"); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"## Method", "## Environment",
		"| wspush | 200 ms | 30000 | 5.0 ms | 9.50 µs | – | 316✓ 200✓ |",
		"| gorilla | 400 ms | 12000 |", "| 2.50× |", // 30000 / 12000
		// floor's best trial was load-bound: no ratio from it
		"| wspush ÷ floor | ≥ 0.75 | – (load-bound, not the server's figure) | – |",
		"| floor | 150 ms | 40000 | 4.0 ms | 7.00 µs | – |",
		"| wspush ÷ gorilla | ≥ 1.50 | 2.50 | yes |",
		"load-bound, not the server's figure",
		"| wspush | 1000 B |", // median of 900 and 1100
		"idle RSS ≤ 1 KB per connection — wspush 1000 B: yes",
		"| 0.10× |", // 1000 / 10000
		"gorilla round 0: boom",
		"![ticks](img/bench-ticks.png)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q\n%s", want, md)
		}
	}
	// the older ticks file must not win
	if strings.Count(md, "## Ticks") != 1 {
		t.Error("ticks section not exactly once")
	}
}

func TestRatioAndMedian(t *testing.T) {
	if ratio(3, 2) != "1.50×" || ratio(1, 0) != "–" || ratio(0, 1) != "–" {
		t.Fatal("ratio")
	}
	if median([]float64{3, 1, 2}) != 2 || median([]float64{1, 2, 3, 4}) != 2.5 || median(nil) != 0 {
		t.Fatal("median")
	}
}

func TestCharts(t *testing.T) {
	paths, err := Charts(t.TempDir(), sample())
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 {
		t.Fatalf("charts %v, want ticks, idle, broadcast", paths)
	}
}

func TestMarkdownCluster(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	cfg := scenario.ClusterConfig{Conns: 1000, Procs: 2, Publishes: 2, PubEvery: 20 * time.Second, PubAfter: 30 * time.Second}.WithDefaults()
	mk := func(at time.Time, sent int64) *scenario.File {
		return &scenario.File{Schema: scenario.Schema, Scenario: "cluster", Mode: "cluster", Started: at, Finished: at.Add(2 * time.Minute),
			Conns: 1000, Rate: 4000, Rounds: 1, Targets: []string{"wspush"},
			Cluster: &scenario.ClusterResult{Config: cfg, NATSVersion: "v2.15.2", Established: 1000, Peak: 1000, Final: 1000, AtPublish: 1000,
				PublishesSent: sent, Deliveries: 2000, Expected: 2000, AllReached: sent == 2,
				LatencyMS:    wsloadPct(3.2, 250, 15_400),
				PerPublish:   []scenario.PublishWindow{{N: 1, AtS: 30, Deliveries: 1000, LagP50MS: 2, LagP99MS: 9, LagMaxMS: 15_400}, {N: 2, AtS: 50, Deliveries: 1000, LagMaxMS: 80}},
				NodesRSSBase: 20 << 20, NodesRSS: 1 << 30, NodesRSSPeak: 2 << 30, RSSPerConn: 1500, NATSRSS: 30 << 20, NATSRSSPeak: 40 << 20,
				Disconnects: map[string]int64{"reset": 2, "eof": 1}}}
	}
	old := mk(t0.Add(-time.Hour), 1)
	var b bytes.Buffer
	if err := Markdown(&b, []*scenario.File{mk(t0, 2), old}, "img"); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"## Environment",
		"## One publish to 1M clients through NATS",
		"A nats-server v2.15.2 with JetStream and 2 wspush nodes joined by it (ports 9000–9001, `-nats`, `-max-conns 17000`",
		"then 2 publishes through node 0's `POST /v1/publish`, one every 20s from 30s after wsload's start",
		"| publishes acknowledged | 2 | 2: yes |",
		"| deliveries / owed | 2000 / 2000 | 2000: yes |",
		"| lost / gaps / duplicates / history_gone | 0 / 0 / 0 / 0 | 0: yes |",
		"| every client got every publish | yes | |",
		"| end-to-end p50 / p99 / max (every delivery) | 3.2 ms / 250 ms / 15.4 s | |",
		"| wspush nodes' RSS, summed, before the first publish | 1.00 GiB (1500 B/conn above the idle nodes) | |",
		"| nats-server RSS before the first publish / peak | 30 / 40 MiB | |",
		"| disconnects / errors (by class) | eof 1, reset 2 / none | |",
		"| 1 | 30 s | 1000 | 2.0 ms | 9.0 ms | 15.4 s |",
		"| 2 | 50 s | 1000 | 0.0 ms | 0.0 ms | 80.0 ms |",
		"bin/wsbench cluster ",
		"`make bench-cluster`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q\n%s", want, md)
		}
	}
	if strings.Count(md, "## One publish to 1M clients through NATS") != 1 || strings.Contains(md, "| publishes acknowledged | 1 |") {
		t.Error("the older cluster file won, or the section is not there exactly once")
	}
}

func wsloadPct(p50, p99, mx float64) result.Percentiles {
	return result.Percentiles{Count: 2000, P50: p50, P99: p99, Max: mx}
}

func TestMarkdownClusterTicks(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	mk := func(at time.Time, conns int, presence bool, perTick float64) *scenario.File {
		cfg := scenario.ClusterConfig{Conns: conns, Procs: 6, Topics: 100, Ticks: 5 * time.Second, Presence: presence}.WithDefaults()
		r := &scenario.ClusterResult{Config: cfg, RSSTotalPerConn: 3100, AllReached: true, Ticks: 900, PresenceTicks: 300, PresenceOK: presence,
			TickPhase: &scenario.TickPhase{FromS: 30, ToS: 80, Ticks: 1_000_000, TicksPerSec: 20_000, CPUSeconds: 2, CPUPerTickUS: perTick, CPUCores: 0.04}}
		return &scenario.File{Schema: scenario.Schema, Scenario: "cluster-ticks", Mode: "cluster", Started: at, Finished: at.Add(time.Minute), Cluster: r}
	}
	files := []*scenario.File{
		mk(t0, 100_000, true, 2.5), mk(t0.Add(-time.Hour), 100_000, true, 9.9), // the older one loses
		mk(t0.Add(time.Minute), 100_000, false, 2.0), mk(t0.Add(time.Hour), 1_000_000, true, 3.0),
	}
	var b bytes.Buffer
	if err := Markdown(&b, files, "img"); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	rows := []string{
		"| 2026-12-01 06:01 | 100000 / 6 / 100 | 5s | off | 3100 B | 2.00 µs | 20000 (50 s) | 0.04 cores | – | – | yes |",
		"| 2026-12-01 06:00 | 100000 / 6 / 100 | 5s | on | 3100 B | 2.50 µs | 20000 (50 s) | 0.04 cores | 300 of 900 | yes | yes |",
		"| 2026-12-01 07:00 | 1000000 / 6 / 100 | 5s | on | 3100 B | 3.00 µs |",
	}
	last := 0
	for _, want := range append([]string{"## Ticks and presence on the cluster: cost per connection and per tick"}, rows...) {
		i := strings.Index(md, want)
		if i < last {
			t.Errorf("markdown lacks %q (in this order)\n%s", want, md)
		}
		last = max(i, last)
	}
	if strings.Contains(md, "9.90 µs") {
		t.Error("the older run of the same setting was reported")
	}
}
