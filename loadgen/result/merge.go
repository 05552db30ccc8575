package result

import (
	"fmt"
	"sort"
)

// Merge combines the results of worker processes that ran the same
// scenario at the same time into one, exactly: counters and maps are
// summed, histograms merged bucket by bucket and the percentiles computed
// again from the merged histogram, per-second points merged by their
// second. A worker starved of CPU may skip seconds (its point then holds
// the counts of all of them); for a second it skipped, its levels
// (connections, CPU) are carried forward from its previous point, so that
// the merged connection count never drops for want of a report. wsload's own cost is summed (CPU, memory) or maxed (peaks of
// lateness), and the run is wsload-bound if any worker was.
func Merge(parts []*Result) (*Result, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("result: nothing to merge")
	}
	out := *parts[0]
	out.TopicStats = nil
	out.Errors, out.Disconnects = map[string]int64{}, map[string]int64{}
	out.Series = nil
	out.Bottleneck = Bottleneck{}
	out.Self = Self{}
	lag, conn := NewHist(), NewHist()
	var (
		target                                                                    int
		est, peak, final, msgs, wel, gaps, dups, reo, wm, sent, ex, lost, retries int64
		ticks, presTicks                                                          int64
	)
	series := map[int]*Second{}
	seriesHist := map[int]*Hist{}
	machineBusy := false
	for i, p := range parts {
		if p.Scenario != out.Scenario {
			return nil, fmt.Errorf("result: cannot merge %q with %q", out.Scenario, p.Scenario)
		}
		target += p.ConnsTarget
		est += p.ConnsEstablished
		peak += p.ConnsPeak
		final += p.ConnsFinal
		msgs += p.Messages
		wel += p.Welcomes
		gaps += p.Gaps
		dups += p.Duplicates
		reo += p.Reorders
		wm += p.WelcomeMissing
		sent += p.Sent
		ex += p.Expected
		lost += p.Lost
		retries += p.Retries
		out.ConnectLastS = max(out.ConnectLastS, p.ConnectLastS)
		ticks += p.Ticks
		presTicks += p.PresenceTicks
		if len(p.TopicStats) > 0 && out.TopicStats == nil {
			out.TopicStats = make([]TopicStat, len(p.TopicStats))
		}
		for k, t := range p.TopicStats {
			if k < len(out.TopicStats) {
				o := &out.TopicStats[k]
				o.Subs += t.Subs
				o.SumMax += t.SumMax
				o.SumBase += t.SumBase
				o.LastPub = max(o.LastPub, t.LastPub)
				o.PresSubs += t.PresSubs
				o.mergePresence(t.PresSeen, t.PresMin, t.PresMax)
			}
		}
		for k, v := range p.Errors {
			out.Errors[k] += v
		}
		for k, v := range p.Disconnects {
			out.Disconnects[k] += v
		}
		for _, pair := range []struct {
			dst *Hist
			src string
		}{{lag, p.LagHist}, {conn, p.ConnHist}} {
			h, err := DecodeHist(pair.src)
			if err != nil {
				return nil, err
			}
			pair.dst.Merge(h)
		}
		for _, s := range p.Series {
			d := series[s.T]
			if d == nil {
				d = &Second{T: s.T}
				series[s.T] = d
				seriesHist[s.T] = NewHist()
			}
			d.Conns += s.Conns
			d.Connects += s.Connects
			d.Msgs += s.Msgs
			d.Errors += s.Errors
			d.Gaps += s.Gaps
			d.CPU += s.CPU
			h, err := DecodeHist(s.LagHist)
			if err != nil {
				return nil, err
			}
			seriesHist[s.T].Merge(h)
		}
		if p.DurationS > out.DurationS {
			out.DurationS = p.DurationS
		}
		if p.Started.Before(out.Started) {
			out.Started = p.Started
		}
		s := &out.Self
		s.CPUSeconds += p.Self.CPUSeconds
		s.CPUAvgCores += p.Self.CPUAvgCores
		s.CPUPeakCores += p.Self.CPUPeakCores
		s.RSSPeakBytes += p.Self.RSSPeakBytes
		s.HeapBytes += p.Self.HeapBytes
		s.PollerBusyPeak = max(s.PollerBusyPeak, p.Self.PollerBusyPeak)
		s.SchedDelayP99MS = max(s.SchedDelayP99MS, p.Self.SchedDelayP99MS)
		s.RampBehindMaxMS = max(s.RampBehindMaxMS, p.Self.RampBehindMaxMS)
		s.MachineCPUPeak = max(s.MachineCPUPeak, p.Self.MachineCPUPeak)
		s.CoresAvailable += p.Self.CoresAvailable
		if p.Bottleneck.WsloadBound {
			out.Bottleneck.WsloadBound = true
		}
		if p.Bottleneck.Cause == CauseMachineBusy {
			machineBusy = true
		}
		for _, r := range p.Bottleneck.Reasons {
			out.Bottleneck.Reasons = append(out.Bottleneck.Reasons, fmt.Sprintf("worker %d: %s", i, r))
		}
	}
	out.ConnsTarget, out.ConnsEstablished, out.ConnsPeak, out.ConnsFinal = target, est, peak, final
	out.Messages, out.Welcomes, out.Gaps, out.Duplicates, out.Reorders = msgs, wel, gaps, dups, reo
	out.WelcomeMissing, out.Sent, out.Expected, out.Lost = wm, sent, ex, lost
	out.Retries = retries
	out.Ticks, out.PresenceTicks = ticks, presTicks
	out.FinishTopics()
	out.LagHist, out.ConnHist = lag.Encode(), conn.Encode()
	out.LagMS, out.ConnectMS = lag.Percentiles(), conn.Percentiles()
	carryForward(parts, series, seriesHist)
	keys := make([]int, 0, len(series))
	for t := range series {
		keys = append(keys, t)
	}
	sort.Ints(keys)
	for _, t := range keys {
		s, h := series[t], seriesHist[t]
		pc := h.Percentiles()
		s.LagP50, s.LagP99, s.LagMax, s.LagHist = pc.P50, pc.P99, pc.Max, h.Encode()
		out.Series = append(out.Series, *s)
	}
	out.Self.Finish(out.ConnsPeak, out.Messages)
	switch {
	case out.Bottleneck.WsloadBound:
		out.Bottleneck.Cause = CauseSaturated
	case machineBusy:
		out.Bottleneck.Cause = CauseMachineBusy
	default:
		out.Bottleneck.Cause = CauseNone
	}
	out.Bottleneck.Summary = SummaryOf(out.Bottleneck.Cause)
	out.Params.Procs = len(parts)
	return &out, nil
}

// Finish fills the per-connection and per-message figures.
func (s *Self) Finish(conns, msgs int64) {
	if conns > 0 {
		s.RSSPerConn = float64(s.RSSPeakBytes) / float64(conns)
		s.HeapPerConn = float64(s.HeapBytes) / float64(conns)
	}
	if msgs > 0 {
		s.CPUPerMsgUS = s.CPUSeconds * 1e6 / float64(msgs)
	}
}

// Summary is the sentence for a Bottleneck verdict that knows only
// whether wsload was bound (CauseSaturated or CauseNone).
func Summary(bound bool) string {
	if bound {
		return SummaryOf(CauseSaturated)
	}
	return SummaryOf(CauseNone)
}

// SummaryOf is the sentence for a Bottleneck.Cause.
func SummaryOf(cause string) string {
	switch cause {
	case CauseSaturated:
		return "wsload was the bottleneck: its latency and throughput figures understate the server"
	case CauseMachineBusy:
		return "the machine was busy, not wsload: wsload kept up with its own work, but its threads waited for CPUs other processes held, so latency includes that wait"
	}
	return "wsload kept up: latency and throughput reflect the server (and the shared machine)"
}

// carryForward adds, for every second after a part's first point that the
// part has no point for, that part's last connection count and CPU.
func carryForward(parts []*Result, series map[int]*Second, hists map[int]*Hist) {
	maxT := 0
	for _, p := range parts {
		if n := len(p.Series); n > 0 {
			maxT = max(maxT, p.Series[n-1].T)
		}
	}
	for _, p := range parts {
		if len(p.Series) == 0 {
			continue
		}
		j, last := 0, p.Series[0]
		for t := p.Series[0].T; t <= maxT; t++ {
			if j < len(p.Series) && p.Series[j].T == t {
				last = p.Series[j]
				j++
				continue
			}
			d := series[t]
			if d == nil {
				d = &Second{T: t}
				series[t] = d
				hists[t] = NewHist()
			}
			d.Conns += last.Conns
			d.CPU += last.CPU
		}
	}
}
