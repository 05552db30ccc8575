package scenario

import (
	"context"
	"time"

	"wspush/bench/internal/cpuquota"
	"wspush/bench/internal/procstat"
	"wspush/bench/internal/target"
	"wspush/loadgen/result"
)

// MaxSettleS bounds how long after the ramp a ticks trial waits for the
// target to be on time before its steady window starts (Settle).
const MaxSettleS = 15

// MinWindowS is the shortest steady window judge accepts.
const MinWindowS = 3

// backlogEvery is how often (seconds) the sampler reads wsload's receive
// backlog: /proc/net/tcp with 40,000 sockets costs the machine tens of
// milliseconds, too much for every second.
const backlogEvery = 3

// sample is one reading, once a second during a trial, of what wsbench
// measures beside wsload.
type sample struct {
	at      float64 // seconds since wsload was started
	server  float64 // the server processes' CPU seconds so far
	machine float64 // the machine's busy CPU seconds so far
	load    coresSample
	backlog int64 // wsload's receive backlog in bytes; -1 when not read at this sample
	quota   cpuquota.Stat
	quotaOK bool
}

// sampleTrial reads a sample every second from t0 until ctx ends and
// returns them; the backlog from second backlogFrom on.
func (e *Env) sampleTrial(ctx context.Context, run *target.Running, t0 time.Time, backlogFrom int) []sample {
	var out []sample
	pids, ports := run.PIDs(), run.Ports()
	for k := 0; ; k++ {
		select {
		case <-ctx.Done():
			return out
		case <-time.After(time.Until(t0.Add(time.Duration(k) * time.Second))):
		}
		s := sample{at: time.Since(t0).Seconds(), backlog: -1}
		var err error
		if s.server, err = procstat.SumCPU(pids); err != nil {
			return out // the server is gone
		}
		s.machine, _ = procstat.MachineBusySeconds()
		s.load = e.loadCoresSample()
		s.quota, s.quotaOK = run.QuotaStat()
		if k >= backlogFrom && (k-backlogFrom)%backlogEvery == 0 {
			s.backlog = RxBacklog(ports)
		}
		out = append(out, s)
	}
}

// over is what the samples say of the window (from, to] (seconds since
// wsload's start): the first sample at or after from and the last at or
// before to.
type over struct {
	ok                 bool
	seconds            float64
	server, machine    float64 // cores
	loadBusy           float64 // share of the load CPUs' time
	backlog0, backlog1 int64   // -1 when no backlog read falls in the window
	quota              cpuquota.Stat
	quotaOK            bool
}

// window sums the samples over (from, to].
func window(ss []sample, from, to float64) over {
	w := over{backlog0: -1, backlog1: -1}
	var a, b *sample
	for i := range ss {
		s := &ss[i]
		if s.at < from-0.5 || s.at > to+0.5 {
			continue
		}
		if a == nil {
			a = s
		}
		b = s
		if s.backlog >= 0 {
			if w.backlog0 < 0 {
				w.backlog0 = s.backlog
			}
			w.backlog1 = s.backlog
		}
	}
	if a == nil || b.at-a.at < 0.5 {
		return over{backlog0: -1, backlog1: -1}
	}
	w.ok, w.seconds = true, b.at-a.at
	w.server = (b.server - a.server) / w.seconds
	w.machine = (b.machine - a.machine) / w.seconds
	w.loadBusy = a.load.busyUntil(b.load)
	if a.quotaOK && b.quotaOK {
		w.quota, w.quotaOK = b.quota.Sub(a.quota), true
	}
	return w
}

// Settle is the first second at or after from from which the target was
// on time: the lag p99 of that second and the next is at most
// MaxLagP99MS and both delivered messages. A target that fell behind
// while connections were still being opened (handshakes and pushes share
// its CPU) catches up after the ramp; the steady window, which measures
// what the target sustains, starts once it has. It waits at most
// MaxSettleS seconds, and leaves at least MinWindowS seconds of the run
// after it: a target still late then is judged on its late seconds.
func Settle(series []result.Second, from int) int {
	onTime := func(s result.Second) bool { return s.Msgs > 0 && s.LagP99 <= MaxLagP99MS }
	for i := 0; i+1 < len(series); i++ {
		s := series[i]
		if s.T < from {
			continue
		}
		if s.T > from+MaxSettleS {
			break
		}
		if onTime(s) && onTime(series[i+1]) && series[i+1].T == s.T+1 {
			return s.T
		}
	}
	last := from
	if len(series) > 0 {
		last = series[len(series)-1].T
	}
	return max(from, min(from+MaxSettleS, last+1-MinWindowS))
}
