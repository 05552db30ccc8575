package scenario

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"wspush/bench/internal/procstat"
	"wspush/bench/internal/target"
	"wspush/bench/internal/wsload"
	"wspush/loadgen/result"
)

// idleInterval is the push interval while holding idle connections: long
// enough that no tick falls into the measurement.
const idleInterval = time.Hour

// IdleResult is one idle-hold measurement of one target.
type IdleResult struct {
	Target         string  `json:"target"`
	Round          int     `json:"round"`
	N1             int     `json:"n1"`
	N2             int     `json:"n2"`
	RSS0           int64   `json:"rss0_bytes"` // no connections
	RSS1           int64   `json:"rss1_bytes"`
	RSS2           int64   `json:"rss2_bytes"`
	RSSPerConn     float64 `json:"rss_per_conn_bytes"`    // (RSS2−RSS1)/(N2−N1)
	SlabPerConn    float64 `json:"slab_per_conn_bytes"`   // Slab delta / (N2−N1), both loopback ends
	IdleCPUPercent float64 `json:"idle_cpu_percent_core"` // server CPU at N2, % of one core
	Err            string  `json:"error,omitempty"`
}

// Idle measures, per target and round, RSS and kernel Slab per connection
// as the slope between n1 and e.Conns held connections, and idle CPU.
func Idle(ctx context.Context, e *Env, n1 int) ([]IdleResult, error) {
	var out []IdleResult
	for round := 0; round < e.Rounds; round++ {
		for _, name := range e.Targets {
			r, err := idleOne(ctx, e, name, n1, round)
			if err != nil {
				if ctx.Err() != nil {
					return out, err
				}
				r.Err = err.Error()
			}
			e.logf("idle  %-8s round %d: rss %.0f B/conn, slab %.0f B/conn, idle cpu %.2f%% %s", name, round, r.RSSPerConn, r.SlabPerConn, r.IdleCPUPercent, r.Err)
			out = append(out, r)
		}
	}
	return out, nil
}

func idleOne(ctx context.Context, e *Env, name string, n1, round int) (IdleResult, error) {
	r := IdleResult{Target: name, Round: round, N1: n1, N2: e.Conns}
	e.waitQuiet(ctx)
	run, err := target.Start(ctx, e.spec(name, idleInterval))
	if err != nil {
		return r, err
	}
	defer stopTarget(run)
	pids := run.PIDs()
	base := countSockets(pids)
	time.Sleep(500 * time.Millisecond)
	r.RSS0, _ = procstat.SumRSS(pids)

	// two wsload processes: the first holds n1, the second adds N2−n1
	ramp1 := time.Duration(float64(n1)/float64(e.Rate)*float64(time.Second)) + 3*time.Second
	ramp2 := time.Duration(float64(e.Conns-n1)/float64(e.Rate)*float64(time.Second)) + 3*time.Second
	hold := 10 * time.Second
	d2 := ramp2 + hold
	d1 := ramp1 + d2 + 5*time.Second
	type res struct {
		r   *wsload.Output
		err error
	}
	c1 := make(chan res, 1)
	go func() {
		x, err := wsload.Run(ctx, e.Root, wsload.Args{Scenario: "connect", CPUs: e.LoadCPUs, OutDir: e.WorkDir, Name: fmt.Sprintf("idle-%s-%d-a", name, round), Duration: d1,
			Flags: []string{"-conns", strconv.Itoa(n1), "-rate", strconv.Itoa(e.Rate), "-url", run.URL()}})
		c1 <- res{x, err}
	}()
	// the readiness probes of target.Start may still be counted in base
	// (and then close), so a few sockets of slack
	const slack = 5
	if _, err := waitSockets(ctx, pids, base+n1-slack, ramp1+10*time.Second); err != nil {
		<-c1
		return r, err
	}
	time.Sleep(2 * time.Second)
	m1, _ := procstat.ReadMeminfo()
	r.RSS1, _ = procstat.SumRSS(pids)
	c2 := make(chan res, 1)
	go func() {
		x, err := wsload.Run(ctx, e.Root, wsload.Args{Scenario: "connect", CPUs: e.LoadCPUs, OutDir: e.WorkDir, Name: fmt.Sprintf("idle-%s-%d-b", name, round), Duration: d2,
			Flags: []string{"-conns", strconv.Itoa(e.Conns - n1), "-rate", strconv.Itoa(e.Rate), "-url", run.URL()}})
		c2 <- res{x, err}
	}()
	_, werr := waitSockets(ctx, pids, base+e.Conns-slack, ramp2+10*time.Second)
	if werr == nil {
		time.Sleep(2 * time.Second)
		m2, _ := procstat.ReadMeminfo()
		r.RSS2, _ = procstat.SumRSS(pids)
		r.RSSPerConn, _ = procstat.Slope([]float64{float64(n1), float64(e.Conns)}, []float64{float64(r.RSS1), float64(r.RSS2)})
		r.SlabPerConn = float64(m2.Slab-m1.Slab) / float64(e.Conns-n1)
		cores, err := cpuOver(ctx, pids, 5*time.Second)
		if err == nil {
			r.IdleCPUPercent = cores * 100
		}
	}
	a, b := <-c1, <-c2
	if werr != nil {
		return r, werr
	}
	if a.err != nil {
		return r, a.err
	}
	return r, b.err
}

// rampOf is the time until conns connections were open (the second in
// which the last connected, counted to its end) and the busiest second.
func rampOf(series []result.Second, conns int) (float64, int64) {
	var ramp float64
	var peak int64
	first := -1
	for _, s := range series {
		if s.Connects > 0 && first < 0 {
			first = s.T - 1 // second T covers (T−1, T]
		}
		peak = max(peak, s.Connects)
		if ramp == 0 && s.Conns >= int64(conns) && first >= 0 {
			ramp = float64(s.T - first)
		}
	}
	return ramp, peak
}
