package scenario

import (
	"fmt"
	"runtime"
	"strings"
	"time"

	"wspush/loadgen/internal/selfmon"
	"wspush/loadgen/result"
)

func (r *Run) result(start time.Time, elapsed time.Duration, final int64) *result.Result {
	res := &result.Result{
		Schema:    result.Schema,
		Scenario:  r.cfg.Scenario,
		Started:   start.UTC(),
		DurationS: elapsed.Seconds(),
		Params: result.Params{
			URL: r.cfg.URL, Admin: r.cfg.Admin, Rate: r.cfg.Rate, Sources: len(r.plan.Sources),
			Procs: max(r.cfg.Procs, 1), Pollers: r.cfg.Pollers, Topics: r.cfg.Topics,
			PubRate: r.cfg.PubRate, PubAfterS: r.cfg.PubAfter.Seconds(), PubCount: r.cfg.PubCount, PingRate: r.cfg.PingRate, ChurnRate: r.cfg.ChurnRate,
			Retries: r.cfg.Retries, Presence: r.cfg.Presence,
			DurationS: r.cfg.Duration.Seconds(),
		},
		ConnsTarget:      r.cfg.Conns,
		ConnsEstablished: r.established.Load(),
		ConnsPeak:        r.peak.Load(),
		ConnsFinal:       final,
		Errors:           map[string]int64{},
		Disconnects:      map[string]int64{},
		Sent:             r.sent.Load(),
		Retries:          r.retries.Load(),
		TopicStats:       r.topicStats,
		Series:           r.series,
	}
	if r.cfg.Retries > 0 {
		res.Params.RetryBackoffS = r.cfg.RetryBackoff.Seconds()
	}
	lag := result.NewHist()
	var pongs int64
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		lag.Merge(s.lag)
		res.Messages += s.msgs
		res.Welcomes += s.welcomes
		res.Gaps += s.gaps
		res.Duplicates += s.dups
		res.Reorders += s.reorders
		res.WelcomeMissing += s.welcomeMiss
		pongs += s.pongs
		res.Ticks += s.ticks
		res.PresenceTicks += s.presTicks
		for k, v := range s.errs {
			if d, ok := strings.CutPrefix(k, "disc:"); ok {
				res.Disconnects[d] += v
			} else {
				res.Errors[k] += v
			}
		}
		s.mu.Unlock()
	}
	r.connMu.Lock()
	for k, v := range r.dialErrs {
		res.Errors[k] += v
	}
	res.ConnHist, res.ConnectMS = r.connHist.Encode(), r.connHist.Percentiles()
	r.connMu.Unlock()
	r.topicMu.Lock()
	for k, v := range r.pubErrs {
		res.Errors[k] += v
	}
	r.topicMu.Unlock()
	res.LagHist, res.LagMS = lag.Encode(), lag.Percentiles()
	if r.cfg.Scenario == "echo" {
		res.Expected = res.Sent
		res.Lost = max(res.Sent-pongs, 0)
	}
	res.FinishTopics()
	if last := r.eng.LastUpgrade(); !last.IsZero() && last.After(start) {
		res.ConnectLastS = float64(last.Sub(start).Microseconds()) / 1e6
	}
	res.Self, res.Bottleneck = r.self(res)
	return res
}

// self summarises the samples and judges whether wsload limited the run
// (selfmon.Judge).
func (r *Run) self(res *result.Result) (result.Self, result.Bottleneck) {
	var s result.Self
	var heapAtPeak int64
	var peakConns int64
	for i, smp := range r.samples {
		s.CPUPeakCores = max(s.CPUPeakCores, smp.CPUCores)
		s.PollerBusyPeak = max(s.PollerBusyPeak, smp.PollerBusy)
		s.RSSPeakBytes = max(s.RSSPeakBytes, smp.RSS)
		s.SchedDelayP99MS = max(s.SchedDelayP99MS, smp.SchedP99MS)
		s.MachineCPUPeak = max(s.MachineCPUPeak, smp.MachineBusy)
		if i < len(r.series) && r.series[i].Conns >= peakConns {
			peakConns, heapAtPeak = r.series[i].Conns, smp.Heap
		}
	}
	if n := len(r.samples); n > 0 {
		s.CPUSeconds = r.samples[n-1].CPUTotal
	}
	if res.DurationS > 0 {
		s.CPUAvgCores = s.CPUSeconds / res.DurationS
	}
	s.HeapBytes = heapAtPeak
	s.RampBehindMaxMS = float64(r.rampBehind.Load()) / 1e6
	s.CoresAvailable = selfmon.AvailableCores(runtime.GOMAXPROCS(0), runtime.NumCPU(), r.cfg.Procs)
	s.Finish(res.ConnsPeak, res.Messages)
	return s, selfmon.Judge(r.samples, s.CoresAvailable, time.Duration(r.rampBehind.Load()))
}

// LiveLine is the once-a-second status line.
func LiveLine(s result.Second, smp selfmon.Sample, target int, errs int64) string {
	return fmt.Sprintf("[%3ds] conns %d/%d  +%d/s  msgs %d/s  lag p50 %.1fms p99 %.1fms  gaps %d  errors %d  cpu %.2f busy %.0f%%",
		s.T, s.Conns, target, s.Connects, s.Msgs, s.LagP50, s.LagP99, s.Gaps, errs, smp.CPUCores, smp.PollerBusy*100)
}
