package render

import (
	"fmt"
	"strings"

	"wspush/bench/internal/scenario"
)

// LoadBoundNote marks a row whose figures are wsload's limit; no ratio is
// computed from it.
const LoadBoundNote = "load-bound, not the server's figure"

// writeFixed is the headline: server CPU per push at fixed offered rates,
// every target side by side, from one run.
func writeFixed(b *strings.Builder, f *scenario.File, img string) {
	if len(f.Fixed) > 0 { // the headline holds fewer connections than the run's N
		g := *f
		g.Conns = f.Fixed[0].Conns
		f = &g
	}
	header(b, "Headline: server CPU per push at a fixed offered rate", f)
	if len(f.Fixed) == 0 {
		return
	}
	fmt.Fprintf(b, "%d connections, one tick per connection per interval; every target on CPU %s, wsload (`-read-batch %s`) on CPU %s. "+
		"Server CPU per push = the server process's utime+stime over the steady window ÷ pushes wsload received in it; median over the clean rounds "+
		"(the server delivered ≥ 95 %% of the offer with lag p99 ≤ 100 ms, no gaps or errors, and wsload was not the limit). "+
		"A round is *load-bound* when over its window wsload's CPU was ≥ %.0f %% of its core in ≥ %d s (or on average), or its receive backlog "+
		"(unread bytes in its sockets, `/proc/net/tcp`) grew by more than %.0f ms of the traffic, or its core was ≥ %.0f %% busy (`/proc/stat`, softirq and "+
		"other processes included); no ratio is computed from such a round.\n\n",
		f.Fixed[0].Conns, f.Pinning.Server, scenario.ReadBatch, f.Pinning.Load, scenario.LoadCPULimit*100, scenario.LoadHotSeconds, scenario.BacklogLimitS*1000, scenario.LoadCPULimit*100)
	var rates []float64
	byRate := map[float64][]scenario.FixedResult{}
	for _, r := range f.Fixed {
		if _, ok := byRate[r.OfferedRate]; !ok {
			rates = append(rates, r.OfferedRate)
		}
		byRate[r.OfferedRate] = append(byRate[r.OfferedRate], r)
	}
	for _, rate := range rates {
		rows := byRate[rate]
		fmt.Fprintf(b, "**%.0f pushes/s offered** (interval %.0f ms):\n\n", rate, rows[0].IntervalMS)
		b.WriteString("| target | server CPU/push | wspush ÷ target | delivered/s | server cores | lag p99 | wsload CPU/msg | wsload cores | wsload backlog start→end | rounds (µs/push) | notes |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
		ws := 0.0
		for _, r := range rows {
			if r.Target == "wspush" {
				ws = r.CPUPerPush
			}
		}
		for _, r := range rows {
			var deliv, cores, lag, wmsg, wcores []float64
			var rounds, why []string
			var bl string
			for _, t := range r.Trials {
				deliv = append(deliv, t.Steady.MsgsPerSec)
				cores = append(cores, t.ServerCores)
				lag = append(lag, t.Steady.LagP99MS)
				wmsg = append(wmsg, t.WsloadCPUPerMsg)
				wcores = append(wcores, t.Load.CPUMean)
				mark := ""
				switch {
				case t.Load.Bound:
					mark = " (load-bound)"
					why = append(why, t.Load.Why)
				case !t.Pass:
					mark = " (✗)"
					why = append(why, t.Why)
				}
				rounds = append(rounds, fmt.Sprintf("%.2f%s", t.CPUPerPush, mark))
				bl = fmt.Sprintf("%d→%d KiB", t.Load.BacklogStart>>10, t.Load.BacklogEnd>>10)
			}
			cpu, rat := "–", "–"
			var notes []string
			switch {
			case r.Clean > 0:
				cpu = fmt.Sprintf("%.2f µs", r.CPUPerPush)
				if r.Target != "wspush" {
					rat = ratio(ws, r.CPUPerPush)
				}
			case r.LoadBound:
				notes = append(notes, LoadBoundNote)
			}
			if !r.KeptUp {
				notes = append(notes, "did not keep up in every round")
			}
			if r.Clean > 0 && r.Clean < len(r.Trials) {
				notes = append(notes, fmt.Sprintf("%d of %d rounds clean", r.Clean, len(r.Trials)))
			}
			if len(why) > 0 {
				notes = append(notes, strings.Join(why, "; "))
			}
			fmt.Fprintf(b, "| %s | %s | %s | %.0f | %.2f | %.1f ms | %.2f µs | %.2f | %s | %s | %s |\n", r.Target, cpu, rat,
				median(deliv), median(cores), median(lag), median(wmsg), median(wcores), bl, strings.Join(rounds, ", "), strings.Join(notes, "; "))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(b, "![fixed](%s/bench-fixed.png)\n\n", img)
}
