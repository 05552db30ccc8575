package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"wspush/bench/internal/procstat"
	"wspush/bench/internal/target"
	"wspush/bench/internal/wsload"
)

// The connect measurement's load: wsload offers ConnectOffered
// connections/s open loop, from ConnectProcs worker processes (all on
// Env.LoadCPUs) with ConnectDialers concurrent connects per process, so
// that the offer is above what the server on its one core accepts. (With
// wsload's default 64 dialers per process, 128 connects in flight at ~8 ms
// each capped the rate near 16,000/s with both processes' CPU half idle.)
//
// No -sources: a dial without a source address takes wsload's async path
// (a raw non-blocking socket upgraded on the poller, docs/loadgen.md), a
// third cheaper than the standard library's dial that binding a source
// needs — and on loopback the load core also carries the kernel's side of
// every handshake, so the cheaper client is what keeps it from being the
// limit. Without sources all connections share one source and destination,
// and the kernel's ephemeral-port search gets slow past about half the
// port range (Linux tries even ports first: ~14,100 here), so a connect run
// opens at most ConnectMaxConns connections, not Env.Conns.
var (
	ConnectOffered  = 40000
	ConnectProcs    = 2
	ConnectDialers  = 1024
	ConnectMaxConns = 12000
)

// ConnectResult is one connect measurement of one target.
type ConnectResult struct {
	Target      string  `json:"target"`
	Round       int     `json:"round"`
	Conns       int     `json:"conns"`
	Offered     int     `json:"offered_per_s,omitempty"`
	Established int64   `json:"established"`
	RampS       float64 `json:"ramp_s"` // seconds until all were open (1 s resolution)
	// SpanS is wsload's connect_last_s: from the start of the ramp to the
	// last upgrade (µs resolution); PerSec = Established / SpanS when set.
	SpanS        float64 `json:"span_s,omitempty"`
	PerSec       float64 `json:"handshakes_per_s"`
	PeakPerSec   int64   `json:"peak_per_s"`
	ConnectP50MS float64 `json:"connect_p50_ms"`
	ConnectP99MS float64 `json:"connect_p99_ms"`
	Errors       int64   `json:"errors"`
	// ServerCores is the server's CPU over the span (sampled every 50 ms);
	// WsloadCores wsload's (its per-second series over the seconds of the
	// span, ÷ the span: an upper bound), of WsloadCoresAvail.
	ServerCores      float64 `json:"server_cpu_cores,omitempty"`
	WsloadCores      float64 `json:"wsload_cpu_cores,omitempty"`
	WsloadCoresAvail float64 `json:"wsload_cores_available,omitempty"`
	// WsloadBound: wsload's CPU over the span was ≥ LoadCPULimit of its
	// cores (or, in files before the span was measured, wsload's own
	// whole-run verdict): the rate is then wsload's, not the server's.
	// LoadCoresBusy is the share of the load CPUs' time that was busy over
	// the span (/proc/stat, sampled with the server's CPU): on loopback
	// the kernel's handshake work runs there in softirq, which wsload's
	// own CPU figure leaves out. ≥ LoadCPULimit is load-bound too.
	LoadCoresBusy float64         `json:"load_cores_busy,omitempty"`
	WsloadBound   bool            `json:"wsload_bound"`
	LoadWhy       string          `json:"load_bound_why,omitempty"`
	Err           string          `json:"error,omitempty"`
	Wsload        json.RawMessage `json:"wsload,omitempty"`
}

// Connect opens min(e.Conns, ConnectMaxConns) connections at an offered rate of offered/s and
// measures the handshake rate and latency, and who used the CPU.
func Connect(ctx context.Context, e *Env, offered int) ([]ConnectResult, error) {
	var out []ConnectResult
	for round := 0; round < e.Rounds; round++ {
		for _, name := range e.Targets {
			r, err := connectOne(ctx, e, name, offered, round)
			if err != nil {
				if ctx.Err() != nil {
					return out, err
				}
				r.Err = err.Error()
			}
			e.logf("conn  %-8s round %d: %d/%d in %.3fs, %.0f/s (peak %d/s), p99 %.1fms errors %d; server %.2f cores, wsload %.2f of %.2f cores, load cores %.0f%% busy, load-bound %v %s %s",
				name, round, r.Established, r.Conns, r.SpanS, r.PerSec, r.PeakPerSec, r.ConnectP99MS, r.Errors, r.ServerCores, r.WsloadCores, r.WsloadCoresAvail, 100*r.LoadCoresBusy, r.WsloadBound, r.LoadWhy, r.Err)
			out = append(out, r)
		}
	}
	return out, nil
}

// cpuPoint is a reading at a moment: the server's CPU seconds and the load
// CPUs' busy and total jiffies.
type cpuPoint struct {
	at                time.Time
	cpu               float64
	loadBusy, loadAll float64
}

// cpuAt interpolates a cpuPoint at t from points sorted by time.
func cpuAt(pts []cpuPoint, t time.Time) cpuPoint {
	if len(pts) == 0 {
		return cpuPoint{at: t}
	}
	if !t.After(pts[0].at) {
		return pts[0]
	}
	for i := 1; i < len(pts); i++ {
		if !t.After(pts[i].at) {
			a, b := pts[i-1], pts[i]
			f := t.Sub(a.at).Seconds() / b.at.Sub(a.at).Seconds()
			return cpuPoint{at: t, cpu: a.cpu + f*(b.cpu-a.cpu),
				loadBusy: a.loadBusy + f*(b.loadBusy-a.loadBusy), loadAll: a.loadAll + f*(b.loadAll-a.loadAll)}
		}
	}
	return pts[len(pts)-1]
}

func connectOne(ctx context.Context, e *Env, name string, offered, round int) (ConnectResult, error) {
	conns := min(e.Conns, ConnectMaxConns)
	r := ConnectResult{Target: name, Round: round, Conns: conns, Offered: offered}
	e.waitQuiet(ctx)
	run, err := target.Start(ctx, e.spec(name, idleInterval))
	if err != nil {
		return r, err
	}
	defer stopTarget(run)
	// the server's CPU every 50 ms while wsload runs
	var (
		mu  sync.Mutex
		pts []cpuPoint
	)
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if c, err := procstat.SumCPU(run.PIDs()); err == nil {
				p := cpuPoint{at: time.Now(), cpu: c}
				if l := e.loadCoresSample(); l.ok {
					p.loadBusy, p.loadAll = float64(l.busy), float64(l.total)
				}
				mu.Lock()
				pts = append(pts, p)
				mu.Unlock()
			}
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	dur := time.Duration(float64(conns)/float64(offered)*float64(time.Second)) + 8*time.Second
	res, err := wsload.Run(ctx, e.Root, wsload.Args{Scenario: "connect", CPUs: e.LoadCPUs, OutDir: e.WorkDir, Name: fmt.Sprintf("connect-%s-%d", name, round), Duration: dur,
		Flags: []string{"-conns", strconv.Itoa(conns), "-rate", strconv.Itoa(offered), "-url", run.URL(),
			"-procs", strconv.Itoa(ConnectProcs), "-dialers", strconv.Itoa(ConnectDialers)}})
	stop()
	wg.Wait()
	if err != nil {
		return r, err
	}
	r.Wsload = loadRaw(res.Raw)
	r.Established = res.ConnsEstablished
	r.ConnectP50MS, r.ConnectP99MS = res.ConnectMS.P50, res.ConnectMS.P99
	for _, v := range res.Errors {
		r.Errors += v
	}
	r.RampS, r.PeakPerSec = rampOf(res.Series, conns)
	if r.RampS > 0 {
		r.PerSec = float64(r.Established) / r.RampS
	}
	r.WsloadBound = res.Bottleneck.WsloadBound
	r.SpanS = res.ConnectLastS
	if r.SpanS <= 0 {
		return r, nil // an older wsload: 1 s resolution and its own verdict
	}
	r.PerSec = float64(r.Established) / r.SpanS
	t0 := res.Started
	p0, p1 := cpuAt(pts, t0), cpuAt(pts, t0.Add(time.Duration(r.SpanS*float64(time.Second))))
	r.ServerCores = (p1.cpu - p0.cpu) / r.SpanS
	if p1.loadAll > p0.loadAll {
		r.LoadCoresBusy = (p1.loadBusy - p0.loadBusy) / (p1.loadAll - p0.loadAll)
	}
	var wcpu float64
	for _, s := range res.Series {
		if float64(s.T) < r.SpanS+1 {
			wcpu += s.CPU
		}
	}
	r.WsloadCores = wcpu / r.SpanS
	r.WsloadCoresAvail = res.Self.CoresAvailable // summed over its workers
	if r.WsloadCoresAvail <= 0 {
		r.WsloadCoresAvail = 1
	}
	var why []string
	if r.WsloadCores >= LoadCPULimit*r.WsloadCoresAvail {
		why = append(why, fmt.Sprintf("wsload used %.2f of its %.2g cores over the ramp (≥ %.0f%%)", r.WsloadCores, r.WsloadCoresAvail, LoadCPULimit*100))
	}
	if r.LoadCoresBusy >= LoadCPULimit {
		why = append(why, LoadCoresWhy(r.LoadCoresBusy))
	}
	r.WsloadBound, r.LoadWhy = len(why) > 0, strings.Join(why, "; ")
	return r, nil
}
