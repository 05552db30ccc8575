package scenario

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// FixedConns and FixedIntervals are the fixed-rate headline's load:
// 10,000 connections with a tick every 500 ms and every 250 ms offer
// 20,000 and 40,000 pushes/s, well below what wsload reads on its one core
// (≈ 150,000/s) and below what every target sustains on its one core, so
// the server's CPU per push is compared at the same offered work.
var (
	FixedConns     = 10000
	FixedIntervals = []time.Duration{500 * time.Millisecond, 250 * time.Millisecond}
)

// FixedResult is one target at one offered rate, over Env.Rounds rounds.
type FixedResult struct {
	Target      string  `json:"target"`
	Conns       int     `json:"conns"`
	IntervalMS  float64 `json:"interval_ms"`
	OfferedRate float64 `json:"offered_per_s"`
	// CPUPerPush is the median server CPU per delivered push over the
	// clean rounds (Clean): the server kept up and wsload was not the
	// limit. 0 when no round was clean.
	CPUPerPush float64 `json:"server_cpu_us_per_push"`
	Clean      int     `json:"clean_rounds"`
	// LoadBound: some round was load-bound (LoadCheck); such rounds are
	// not in CPUPerPush.
	LoadBound bool `json:"load_bound"`
	// KeptUp: every round delivered the offer with lag p99 ≤ 100 ms, no
	// gaps, no errors (judge's criteria).
	KeptUp bool        `json:"kept_up"`
	Trials []TickTrial `json:"trials"`
}

// Fixed runs every target at each fixed offered rate (FixedIntervals at
// FixedConns connections, or e.Conns if smaller, unless Env says
// otherwise), Env.Rounds times,
// alternating targets (A B C … A B C …): the headline of the report,
// server CPU per push at the same offered rate for all.
func Fixed(ctx context.Context, e *Env) ([]FixedResult, error) {
	conns := min(FixedConns, e.Conns)
	if e.FixedConns > 0 {
		conns = min(e.FixedConns, e.Conns)
	}
	intervals := FixedIntervals
	if len(e.FixedIntervals) > 0 {
		intervals = e.FixedIntervals
	}
	var out []FixedResult
	idx := map[string]int{}
	for round := 0; round < e.Rounds; round++ {
		for _, d := range intervals {
			for _, name := range e.Targets {
				key := fmt.Sprintf("%s/%v", name, d)
				i, ok := idx[key]
				if !ok {
					i = len(out)
					idx[key] = i
					out = append(out, FixedResult{Target: name, Conns: conns, IntervalMS: ms(d), OfferedRate: float64(conns) / d.Seconds(), KeptUp: true})
				}
				tr, err := ticksTrial(ctx, e, name, conns, d, e.FixedQuota, fmt.Sprintf("fixed-%s-%.0f-%d", name, ms(d), round))
				if err != nil {
					if ctx.Err() != nil {
						return out, err
					}
					tr = &TickTrial{Target: name, IntervalMS: ms(d), OfferedRate: out[i].OfferedRate, Why: err.Error()}
				}
				e.logf("fixed %-8s %6.0f/s offered: delivered %7.0f/s server %.2f cores %.2fµs/push, wsload %.2f cores %.2fµs/msg backlog %d→%d B, lag p99 %.1fms pass=%v %s load-bound=%v %s",
					name, tr.OfferedRate, tr.Steady.MsgsPerSec, tr.ServerCores, tr.CPUPerPush, tr.WsloadCores, tr.WsloadCPUPerMsg,
					tr.Load.BacklogStart, tr.Load.BacklogEnd, tr.Steady.LagP99MS, tr.Pass, tr.Why, tr.Load.Bound, tr.Load.Why)
				out[i].Trials = append(out[i].Trials, *tr)
			}
		}
	}
	for i := range out {
		out[i].Summarize()
	}
	return out, nil
}

// Summarize sets CPUPerPush (median over clean trials), Clean, LoadBound
// and KeptUp from Trials.
func (r *FixedResult) Summarize() {
	var clean []float64
	r.LoadBound, r.KeptUp = false, len(r.Trials) > 0
	for _, t := range r.Trials {
		if t.Load.Bound {
			r.LoadBound = true
		}
		if !t.Pass {
			r.KeptUp = false
		}
		if t.Pass && !t.Load.Bound && t.CPUPerPush > 0 {
			clean = append(clean, t.CPUPerPush)
		}
	}
	r.Clean = len(clean)
	r.CPUPerPush = medianOf(clean)
}

func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
