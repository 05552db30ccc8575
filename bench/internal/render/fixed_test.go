package render

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"wspush/bench/internal/scenario"
)

// fixedTrial is one round: server CPU per push, passed, and the load check.
func fixedTrial(cpu float64, pass bool, lc scenario.LoadCheck) scenario.TickTrial {
	return scenario.TickTrial{CPUPerPush: cpu, Pass: pass, Load: lc, ServerCores: cpu * 0.04, WsloadCPUPerMsg: 3}
}

func TestMarkdownFixedNoRatioFromLoadBound(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 40, 0, 0, time.UTC)
	bound := scenario.LoadCheck{Bound: true, Why: "wsload CPU ≥ 90% of its 1 core(s) in 5 s (mean 97%)"}
	res := []scenario.FixedResult{
		{Target: "wspush", Conns: 10000, IntervalMS: 250, OfferedRate: 40000, Trials: []scenario.TickTrial{fixedTrial(10, true, scenario.LoadCheck{}), fixedTrial(12, true, scenario.LoadCheck{})}},
		{Target: "gorilla", Conns: 10000, IntervalMS: 250, OfferedRate: 40000, Trials: []scenario.TickTrial{fixedTrial(13, true, scenario.LoadCheck{}), fixedTrial(9, true, bound)}},
		{Target: "floor", Conns: 10000, IntervalMS: 250, OfferedRate: 40000, Trials: []scenario.TickTrial{fixedTrial(5, true, bound), fixedTrial(6, true, bound)}},
	}
	for i := range res {
		res[i].Summarize()
	}
	f := &scenario.File{Schema: scenario.Schema, Scenario: "fixed", Mode: "full", Started: t0, Finished: t0.Add(5 * time.Minute),
		Conns: 19000, Rate: 4000, Rounds: 2, Targets: []string{"wspush", "gorilla", "floor"},
		Pinning: scenario.Pinning{Server: "0", Load: "1"}, Fixed: res}
	f.Env.Commit = "abc1234"
	var b bytes.Buffer
	if err := Markdown(&b, []*scenario.File{f}, "img"); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"## Headline: server CPU per push at a fixed offered rate",
		"N = 10000 connections, ramp 4000/s", // the headline's N, not the run's 19000
		"run 2026-12-01 09:40 UTC (5m0s) at commit abc1234",
		"**40000 pushes/s offered** (interval 250 ms)",
		"| wspush | 11.00 µs | – |",           // median of the two clean rounds
		"| gorilla | 13.00 µs | 0.85× |",      // only the clean round; 11 / 13
		"| floor | – | – |",                   // no clean round: no figure, no ratio
		"load-bound, not the server's figure", // and said so
		"9.00 (load-bound)",
		"![fixed](img/bench-fixed.png)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q\n%s", want, md)
		}
	}
	if strings.Contains(md, "0.50×") || strings.Contains(md, "2.00×") || strings.Contains(md, "1.83×") {
		t.Errorf("a ratio from a load-bound round was published\n%s", md)
	}
	if _, err := Charts(t.TempDir(), []*scenario.File{f}); err != nil {
		t.Fatal(err)
	}
}
