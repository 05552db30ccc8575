package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"wspush/bench/internal/procstat"
	"wspush/bench/internal/target"
	"wspush/bench/internal/wsload"
	"wspush/loadgen/result"
)

// Lag and loss limits a ticks trial must meet to pass.
const (
	MaxLagP99MS = 100.0
	// MinDelivered is the share of the offered push rate that must arrive
	// in the steady window (a stalled server has no late messages at all).
	MinDelivered = 0.95
	// RetryForeign is the other load (cores) above which a failed trial
	// is repeated once.
	RetryForeign = 0.5
	SearchHi     = 2 * time.Second
	SearchLo     = 50 * time.Millisecond
)

// TickTrial is one ticks run of one target at one interval.
type TickTrial struct {
	Target      string        `json:"target"`
	IntervalMS  float64       `json:"interval_ms"`
	OfferedRate float64       `json:"offered_per_s"` // conns / interval
	Pass        bool          `json:"pass"`
	Why         string        `json:"why,omitempty"`
	Steady      wsload.Steady `json:"steady"`
	ServerCores float64       `json:"server_cpu_cores"` // over the steady window
	// MachineCores is the whole machine's busy CPU over the window; minus
	// server and wsload it is load from elsewhere on the box.
	MachineCores float64 `json:"machine_cpu_cores"`
	WsloadCores  float64 `json:"wsload_cpu_cores"`
	// ForeignBefore is the machine's busy CPU just before the trial, when
	// none of wsbench's processes ran (other users of the box).
	ForeignBefore float64 `json:"foreign_cpu_before_cores"`
	Retried       bool    `json:"retried,omitempty"` // an earlier attempt failed under other load
	CPUPerPush    float64 `json:"server_cpu_us_per_push"`
	// Load is wsload over the same window: its CPU, its receive backlog
	// and whether it was the limit (then CPUPerPush is not the server's).
	Load LoadCheck `json:"load"`
	// WsloadCPUPerMsg is wsload's CPU per message received over the window.
	WsloadCPUPerMsg float64 `json:"wsload_cpu_us_per_msg"`
	ServerRSS       int64   `json:"server_rss_bytes"`
	// QuotaCores is the cap on the server's CPU (cores) in this trial, 0
	// for none; Throttled the share of the cap's periods in the window in
	// which the server wanted more.
	QuotaCores float64 `json:"server_cpu_quota_cores,omitempty"`
	Throttled  float64 `json:"server_throttled_share,omitempty"`
	// SettleS is how many seconds after the ramp the target took to be on
	// time (Settle); the steady window starts then.
	SettleS int             `json:"settle_s"`
	Wsload  json.RawMessage `json:"wsload"`
}

// TicksResult is the search outcome of one target.
type TicksResult struct {
	Target       string  `json:"target"`
	Conns        int     `json:"conns"`
	BestInterval float64 `json:"best_interval_ms"` // 0 when nothing passed
	BestRate     float64 `json:"best_rate_per_s"`  // delivered pushes/s in the best passing trial
	Censored     bool    `json:"censored"`         // nothing failed: the limit is beyond the search range
	CPUPerPush   float64 `json:"server_cpu_us_per_push"`
	LagP99MS     float64 `json:"lag_p99_ms"`
	// WsloadBound: the best trial was load-bound over its steady window
	// (LoadCheck); its rate and CPU are then wsload's limit, not the
	// server's, and no ratio is computed from them.
	WsloadBound bool        `json:"wsload_bound"`
	Trials      []TickTrial `json:"trials"`
}

// Ticks searches, for every target, the shortest push interval at
// e.Conns connections with steady lag p99 ≤ 100 ms, no gaps, no errors and
// every connection held. Step k runs for all targets before step k+1.
func Ticks(ctx context.Context, e *Env) ([]TicksResult, error) {
	searches := make([]*Search, len(e.Targets))
	results := make([]TicksResult, len(e.Targets))
	for i, name := range e.Targets {
		searches[i] = NewSearch(SearchHi, SearchLo, e.Steps)
		results[i] = TicksResult{Target: name, Conns: e.Conns}
	}
	for {
		progressed := false
		for i, name := range e.Targets {
			d, ok := searches[i].Next()
			if !ok {
				continue
			}
			progressed = true
			var tr *TickTrial
			for attempt := 0; attempt < 2; attempt++ {
				var err error
				tr, err = TicksTrial(ctx, e, name, d, fmt.Sprintf("ticks-%s-%d-%d", name, len(searches[i].Trials), attempt))
				if err != nil {
					if ctx.Err() != nil {
						return results, err
					}
					tr = &TickTrial{Target: name, IntervalMS: ms(d), Why: err.Error()}
				}
				// a failure while other processes took CPU is tried once more
				if tr.Pass || !e.RetryUnderLoad || tr.Foreign() < RetryForeign {
					break
				}
				e.logf("ticks %-8s interval %6.0fms failed with %.2f cores of other load; once more", name, ms(d), tr.Foreign())
				tr.Retried = true
			}
			e.logf("ticks %-8s interval %6.0fms offered %7.0f/s → pass=%v delivered %7.0f/s lag p99 %.1fms gaps %d settled +%ds cpu %.2f cores (cap %.2g, throttled %.0f%%) %.2fµs/push (wsload %.2f cores %.2fµs/msg, load core %.0f%%, machine %.2f, load-bound %v %s) %s",
				name, ms(d), tr.OfferedRate, tr.Pass, tr.Steady.MsgsPerSec, tr.Steady.LagP99MS, tr.Steady.Gaps, tr.SettleS, tr.ServerCores, tr.QuotaCores, 100*tr.Throttled, tr.CPUPerPush, tr.WsloadCores, tr.WsloadCPUPerMsg, 100*tr.Load.LoadCoresBusy, tr.MachineCores, tr.Load.Bound, tr.Load.Why, tr.Why)
			searches[i].Record(d, tr.Pass)
			results[i].Trials = append(results[i].Trials, *tr)
		}
		if !progressed {
			break
		}
	}
	for i := range results {
		best, ok, censored := searches[i].Best()
		if !ok {
			continue
		}
		results[i].BestInterval, results[i].Censored = ms(best), censored
		for _, t := range results[i].Trials {
			if t.Pass && t.IntervalMS == ms(best) {
				results[i].BestRate = t.Steady.MsgsPerSec
				results[i].CPUPerPush = t.CPUPerPush
				results[i].LagP99MS = t.Steady.LagP99MS
				results[i].WsloadBound = t.Load.Bound
			}
		}
	}
	return results, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ReadBatch is wsload's -read-batch in every ticks trial: a poller woken
// from idle reads what arrived in the next millisecond in one batch
// (docs/loadgen.md), which keeps wsload's CPU per message well under the
// server's; the lag it adds (≤ 1 ms) is far below the 100 ms criterion.
const ReadBatch = "1ms"

// TicksTrial runs one target at one push interval with e.Conns
// connections and judges it.
func TicksTrial(ctx context.Context, e *Env, name string, interval time.Duration, stem string) (*TickTrial, error) {
	return ticksTrial(ctx, e, name, e.Conns, interval, e.ServerQuota, stem)
}

func ticksTrial(ctx context.Context, e *Env, name string, conns int, interval time.Duration, quota float64, stem string) (*TickTrial, error) {
	tr := &TickTrial{Target: name, IntervalMS: ms(interval), OfferedRate: float64(conns) / interval.Seconds(), QuotaCores: quota}
	tr.ForeignBefore = e.waitQuiet(ctx)
	spec := e.spec(name, interval)
	spec.CPUQuota = quota
	run, err := target.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	defer stopTarget(run)
	ramp := float64(conns) / float64(e.Rate)
	from := int(math.Ceil(ramp)) + 2 + int(math.Ceil(interval.Seconds()))
	hold := max(6*time.Second, 4*interval)
	// slack: under load the ramp runs late; the window starts after it and
	// after the target has caught up (Settle)
	dur := time.Duration(from+3+int(ramp/2)+MaxSettleS)*time.Second + hold

	// sample the server's CPU, the load CPUs and wsload's backlog every
	// second while wsload runs; the window is chosen afterwards
	sctx, cancel := context.WithCancel(ctx)
	samplesc := make(chan []sample, 1)
	t0 := time.Now()
	go func() { samplesc <- e.sampleTrial(sctx, run, t0, from-1) }()
	res, err := wsload.Run(ctx, e.Root, wsload.Args{
		Scenario: "ticks", CPUs: e.LoadCPUs, OutDir: e.WorkDir, Name: stem, Duration: dur,
		Flags: []string{"-conns", strconv.Itoa(conns), "-rate", strconv.Itoa(e.Rate), "-url", run.URL(), "-read-batch", ReadBatch},
	})
	if err == nil {
		tr.ServerRSS, _ = procstat.SumRSS(run.PIDs())
	}
	cancel()
	samples := <-samplesc // the sampler has ended
	if err != nil {
		return nil, err
	}
	tr.Wsload = loadRaw(res.Raw)
	// the steady window starts once every connection is open (plus a settle
	// second and one interval), however late the ramp ran, and once the
	// target is on time (Settle)
	if full := FirstFull(res.Series, conns); full > 0 {
		from = max(from, full+1+int(math.Ceil(interval.Seconds())))
	}
	start := Settle(res.Series, from)
	tr.SettleS = start - from
	st, err := wsload.SteadyState(res.Result, start)
	if err != nil {
		return nil, err
	}
	tr.Steady = st
	// series second T covers (T-1, T] of wsload's clock
	w := window(samples, float64(st.FromT-1), float64(st.ToT))
	if w.ok {
		tr.ServerCores, tr.MachineCores = w.server, w.machine
		if st.MsgsPerSec > 0 {
			tr.CPUPerPush = w.server / st.MsgsPerSec * 1e6
		}
		if w.quotaOK {
			tr.Throttled = w.quota.ThrottledShare()
		}
	}
	tr.Load = NewLoadCheck(res.Result, st.FromT, st.ToT, w.backlog0, w.backlog1, st.MsgsPerSec)
	if w.ok {
		tr.Load.LoadCoresBusy = w.loadBusy
		tr.Load.Judge()
	}
	tr.WsloadCores = tr.Load.CPUMean
	if st.MsgsPerSec > 0 {
		tr.WsloadCPUPerMsg = tr.Load.CPUMean / st.MsgsPerSec * 1e6
	}
	tr.Pass, tr.Why = judge(res.Result, st, conns, tr.OfferedRate)
	return tr, nil
}

// judge applies the pass criteria to a ticks run.
func judge(res *result.Result, st wsload.Steady, conns int, offered float64) (bool, string) {
	var errs int64
	for _, v := range res.Errors {
		errs += v
	}
	for _, v := range res.Disconnects {
		errs += v
	}
	switch {
	case res.ConnsEstablished < int64(conns) || st.MinConns < int64(conns):
		return false, fmt.Sprintf("held %d of %d connections", st.MinConns, conns)
	case res.Gaps > 0:
		return false, fmt.Sprintf("%d gaps", res.Gaps)
	case errs > 0:
		return false, fmt.Sprintf("%d errors/disconnects", errs)
	case st.WindowS < MinWindowS:
		return false, fmt.Sprintf("steady window only %.0f s (ramp too slow)", st.WindowS)
	case st.MsgsPerSec < MinDelivered*offered:
		return false, fmt.Sprintf("delivered %.0f/s of %.0f/s offered", st.MsgsPerSec, offered)
	case st.LagP99MS > MaxLagP99MS:
		return false, fmt.Sprintf("lag p99 %.0f ms", st.LagP99MS)
	}
	return true, ""
}

// FirstFull is the first second at whose end conns connections were open,
// or 0 if that never happened.
func FirstFull(series []result.Second, conns int) int {
	for _, s := range series {
		if s.Conns >= int64(conns) {
			return s.T
		}
	}
	return 0
}

// Foreign is the CPU (cores) other processes used during the trial's
// window: the machine's minus the server's and wsload's.
func (t *TickTrial) Foreign() float64 {
	if t.MachineCores == 0 {
		return t.ForeignBefore
	}
	return max(0, t.MachineCores-t.ServerCores-t.WsloadCores)
}
