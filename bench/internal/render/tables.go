package render

import (
	"encoding/json"
	"fmt"
	"strings"

	"wspush/bench/internal/scenario"
	"wspush/loadgen/result"
)

func writeTicks(b *strings.Builder, f *scenario.File, img string) {
	header(b, "Ticks: highest sustained push rate", f)
	if q := f.Pinning.ServerQuota; q > 0 {
		fmt.Fprintf(b, "Each target's CPU was capped at %.2g cores in this search (a cgroup CFS limit, 10 ms period), while wsload had a whole core: the target runs out of CPU first. Every trial's steady window starts once the target is on time after the ramp (lag p99 ≤ 100 ms in two seconds running, waited for at most %d s; \"settled\" in the notes when it took longer than the ramp).\n\n", q, scenario.MaxSettleS)
	}
	b.WriteString("| target | best interval | pushes/s delivered | lag p99 | server CPU/push | wspush ÷ target | trials (interval→pass) | other load on the box (cores, median) | notes |\n|---|---:|---:|---:|---:|---:|---|---:|---|\n")
	rate, cpu, bound := map[string]float64{}, map[string]float64{}, map[string]bool{}
	for _, t := range f.Ticks {
		rate[t.Target], cpu[t.Target], bound[t.Target] = t.BestRate, t.CPUPerPush, t.WsloadBound
	}
	for _, t := range f.Ticks {
		var tr []string
		var other []float64
		var notes []string
		for _, x := range t.Trials {
			if x.Pass && x.IntervalMS == t.BestInterval {
				if x.SettleS > 0 {
					notes = append(notes, fmt.Sprintf("settled %d s after the ramp", x.SettleS))
				}
				if x.QuotaCores > 0 {
					notes = append(notes, fmt.Sprintf("%.2f of %.2g cores, capped in %.0f%% of periods", x.ServerCores, x.QuotaCores, 100*x.Throttled))
				}
			}
			if x.MachineCores > 0 {
				other = append(other, max(0, x.MachineCores-x.ServerCores-x.WsloadCores))
			}
			mark := "✗"
			if x.Pass {
				mark = "✓"
			}
			tr = append(tr, fmt.Sprintf("%.0f%s", x.IntervalMS, mark))
		}
		if t.BestRate == 0 {
			notes = append(notes, "nothing passed")
		}
		if t.Censored {
			notes = append(notes, "censored (≥ this)")
		}
		if t.WsloadBound {
			notes = append(notes, LoadBoundNote)
		}
		r := "–"
		if t.Target != "wspush" && !bound[t.Target] && !bound["wspush"] {
			r = ratio(rate["wspush"], t.BestRate)
		}
		fmt.Fprintf(b, "| %s | %.0f ms | %.0f | %.1f ms | %.2f µs | %s | %s | %.2f | %s |\n", t.Target, t.BestInterval, t.BestRate, t.LagP99MS, t.CPUPerPush, r, strings.Join(tr, " "), median(other), strings.Join(notes, ", "))
	}
	b.WriteString("\nIssue targets (ticks at N connections), measured:\n\n| goal | wanted | measured | met |\n|---|---:|---:|---|\n")
	for _, g := range []struct {
		peer string
		want float64
	}{{"floor", 0.75}, {"gorilla", 1.5}, {"gws", 1.3}, {"node-ws", 4}} {
		if rate[g.peer] == 0 || rate["wspush"] == 0 {
			continue
		}
		if bound[g.peer] || bound["wspush"] {
			fmt.Fprintf(b, "| wspush ÷ %s | ≥ %.2f | – (%s) | – |\n", g.peer, g.want, LoadBoundNote)
			continue
		}
		got := rate["wspush"] / rate[g.peer]
		fmt.Fprintf(b, "| wspush ÷ %s | ≥ %.2f | %.2f | %s |\n", g.peer, g.want, got, yes(got >= g.want))
	}
	if cpu["floor"] > 0 && cpu["wspush"] > 0 && !bound["floor"] && !bound["wspush"] {
		got := cpu["wspush"] / cpu["floor"]
		fmt.Fprintf(b, "| server CPU per push at the best rate, wspush ÷ floor | ≤ 1.15 | %.2f | %s |\n", got, yes(got <= 1.15))
	}
	fmt.Fprintf(b, "\n![ticks](%s/bench-ticks.png)\n\n", img)
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func writeIdle(b *strings.Builder, f *scenario.File, img string) {
	header(b, "Idle hold: memory and CPU per connection", f)
	rss, slab, cpu := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	var n1, n2 int
	for _, r := range f.Idle {
		if r.Err != "" {
			continue
		}
		rss[r.Target] = append(rss[r.Target], r.RSSPerConn)
		slab[r.Target] = append(slab[r.Target], r.SlabPerConn)
		cpu[r.Target] = append(cpu[r.Target], r.IdleCPUPercent)
		n1, n2 = r.N1, r.N2
	}
	fmt.Fprintf(b, "Slope between N1 = %d and N2 = %d held connections; medians over rounds.\n\n", n1, n2)
	b.WriteString("| target | server RSS/conn | kernel Slab/conn (both ends) | idle CPU (% of a core) | RSS: wspush ÷ target | RSS rounds |\n|---|---:|---:|---:|---:|---|\n")
	med := map[string]float64{}
	for _, t := range f.Targets {
		med[t] = median(rss[t])
	}
	for _, t := range f.Targets {
		r := "–"
		if t != "wspush" {
			r = ratio(med["wspush"], med[t])
		}
		var rounds []string
		for _, v := range rss[t] {
			rounds = append(rounds, fmt.Sprintf("%.0f", v))
		}
		fmt.Fprintf(b, "| %s | %.0f B | %.0f B | %.2f %% | %s | %s |\n", t, med[t], median(slab[t]), median(cpu[t]), r, strings.Join(rounds, ", "))
	}
	fmt.Fprintf(b, "\nIssue target: idle RSS ≤ 1 KB per connection — wspush %.0f B: %s.\n", med["wspush"], yes(med["wspush"] > 0 && med["wspush"] <= 1024))
	for _, r := range f.Idle {
		if r.Err != "" {
			fmt.Fprintf(b, "\n* %s round %d failed: %s", r.Target, r.Round, r.Err)
		}
	}
	fmt.Fprintf(b, "\n![idle](%s/bench-idle.png)\n\n", img)
}

func writeBroadcast(b *strings.Builder, f *scenario.File, img string) {
	header(b, "Broadcast: one publish to all clients", f)
	b.WriteString("| target | clients | p50 | p99 | max (all reached) | missing | p99: wspush ÷ target | max per round |\n|---|---:|---:|---:|---:|---:|---:|---|\n")
	p50, p99, mx, miss, clients := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}, map[string]int{}, map[string]int{}
	for _, r := range f.Broadcast {
		if r.Result == nil {
			continue
		}
		p50[r.Target] = append(p50[r.Target], r.Result.All.P50)
		p99[r.Target] = append(p99[r.Target], r.Result.All.P99)
		mx[r.Target] = append(mx[r.Target], r.Result.All.Max)
		miss[r.Target] += r.Result.All.Missing
		clients[r.Target] = r.Result.Connected
	}
	for _, t := range f.Targets {
		r := "–"
		if t != "wspush" {
			r = ratio(median(p99["wspush"]), median(p99[t]))
		}
		var rounds []string
		for _, v := range mx[t] {
			rounds = append(rounds, fmt.Sprintf("%.1f", v))
		}
		fmt.Fprintf(b, "| %s | %d | %.1f ms | %.1f ms | %.1f ms | %d | %s | %s |\n", t, clients[t], median(p50[t]), median(p99[t]), median(mx[t]), miss[t], r, strings.Join(rounds, ", "))
	}
	for _, r := range f.Broadcast {
		if r.Err != "" {
			fmt.Fprintf(b, "\n* %s round %d: %s", r.Target, r.Round, r.Err)
		}
	}
	fmt.Fprintf(b, "\n![broadcast](%s/bench-broadcast.png)\n\n", img)
}

func writeConnect(b *strings.Builder, f *scenario.File, img string) {
	header(b, "Connect: handshakes per second", f)
	offered := 10000
	var span bool
	for _, r := range f.Connect {
		if r.Offered > 0 {
			offered = r.Offered
		}
		span = span || r.SpanS > 0
	}
	if !span { // files before wsload measured the span
		fmt.Fprintf(b, "wsload offers connections open loop at %d/s; *busiest second* is the most upgrades completed in one second (capped near the offered rate); *time to all N* has 1 s resolution and includes stragglers.\n\n", offered)
		b.WriteString("| target | established | handshakes/s (busiest second) | time to all N | connect p50 | connect p99 | busiest second: wspush ÷ target | notes |\n|---|---:|---:|---:|---:|---:|---:|---|\n")
	} else {
		conns := f.Conns
		for _, r := range f.Connect {
			conns = r.Conns
		}
		fmt.Fprintf(b, "Each run opens %d connections. wsload offers %d connections/s open loop from %d worker processes (%d concurrent connects each) on CPU %s, "+
			"all from 127.0.0.1 (no `-sources`, and ≤ %d connections so that the kernel's ephemeral-port search stays fast); "+
			"handshakes/s = connections established ÷ the time from the start of the ramp to the last upgrade (wsload's `connect_last_s`). "+
			"Server CPU is sampled every 50 ms over that span; wsload's is its per-second series over the seconds of the span ÷ the span (an upper bound). "+
			"*load core busy* is the share of the load CPU's time that was busy over the span (/proc/stat): wsload plus the kernel's "+
			"TCP handshake work that loopback runs there in softirq, which wsload's own figure leaves out. "+
			"A run where wsload used ≥ %.0f %% of its cores, or its core was ≥ %.0f %% busy, is *load-bound*: its rate is wsload's, and no ratio is computed from it. "+
			"Medians over rounds.\n\n", conns, offered, scenario.ConnectProcs, scenario.ConnectDialers, f.Pinning.Load, scenario.ConnectMaxConns, scenario.LoadCPULimit*100, scenario.LoadCPULimit*100)
		b.WriteString("| target | established | handshakes/s | time to all N | server cores | wsload cores (of its) | load core busy | connect p50 | connect p99 | wspush ÷ target | rounds (/s) | notes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	}
	rate, p50, p99, peak, est := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}, map[string][]float64{}, map[string]int64{}
	srv, wl, avail, spans, lcb := map[string][]float64{}, map[string][]float64{}, map[string]float64{}, map[string][]float64{}, map[string][]float64{}
	bound, rounds, why := map[string]bool{}, map[string][]string{}, map[string][]string{}
	for _, r := range f.Connect {
		if r.Err != "" {
			continue
		}
		rate[r.Target] = append(rate[r.Target], r.PerSec)
		p50[r.Target] = append(p50[r.Target], r.ConnectP50MS)
		p99[r.Target] = append(p99[r.Target], r.ConnectP99MS)
		peak[r.Target] = append(peak[r.Target], float64(r.PeakPerSec))
		srv[r.Target] = append(srv[r.Target], r.ServerCores)
		wl[r.Target] = append(wl[r.Target], r.WsloadCores)
		if r.LoadCoresBusy > 0 {
			lcb[r.Target] = append(lcb[r.Target], r.LoadCoresBusy)
		}
		spans[r.Target] = append(spans[r.Target], r.SpanS)
		avail[r.Target] = r.WsloadCoresAvail
		est[r.Target] = r.Established
		bound[r.Target] = bound[r.Target] || r.WsloadBound
		mark := ""
		if r.WsloadBound {
			mark = " (load-bound)"
			if r.LoadWhy != "" {
				why[r.Target] = append(why[r.Target], r.LoadWhy)
			}
		}
		rounds[r.Target] = append(rounds[r.Target], fmt.Sprintf("%.0f%s", r.PerSec, mark))
	}
	for _, t := range f.Targets {
		r := "–"
		note := ""
		if bound[t] {
			note = LoadBoundNote
			if len(why[t]) > 0 {
				note += ": " + strings.Join(why[t], "; ")
			}
		}
		if !span {
			if t != "wspush" && !bound[t] && !bound["wspush"] {
				r = ratio(median(peak["wspush"]), median(peak[t]))
			}
			ramp := 0.0
			if v := median(rate[t]); v > 0 {
				ramp = float64(f.Conns) / v
			}
			fmt.Fprintf(b, "| %s | %d | %.0f | %.0f s | %.1f ms | %.1f ms | %s | %s |\n", t, est[t], median(peak[t]), ramp, median(p50[t]), median(p99[t]), r, note)
			continue
		}
		if t != "wspush" && !bound[t] && !bound["wspush"] {
			r = ratio(median(rate["wspush"]), median(rate[t]))
		}
		busy := "–"
		if len(lcb[t]) > 0 {
			busy = fmt.Sprintf("%.0f %%", 100*median(lcb[t]))
		}
		fmt.Fprintf(b, "| %s | %d | %.0f | %.3f s | %.2f | %.2f (of %.2g) | %s | %.1f ms | %.1f ms | %s | %s | %s |\n", t, est[t], median(rate[t]), median(spans[t]),
			median(srv[t]), median(wl[t]), avail[t], busy, median(p50[t]), median(p99[t]), r, strings.Join(rounds[t], ", "), note)
	}
	for _, r := range f.Connect {
		if r.Err != "" {
			fmt.Fprintf(b, "\n* %s round %d: %s", r.Target, r.Round, r.Err)
		}
	}
	fmt.Fprintf(b, "\n![connect](%s/bench-connect.png)\n\n", img)
}

func writeOneMillion(b *strings.Builder, f *scenario.File, img string) {
	fmt.Fprintf(b, "## One million connections\n\nRun %s (%s).\n\n", f.Started.UTC().Format("2006-01-02 15:04 UTC"), f.Finished.Sub(f.Started).Round(1e9))
	for _, n := range f.Notes {
		fmt.Fprintf(b, "> %s\n\n", n)
	}
	r := f.OneMillion
	if r == nil {
		return
	}
	c := r.Config
	fmt.Fprintf(b, "wspush as %d processes (ports 9000–%d, `-max-conns %d`, `-push-interval %s`), wsload `-procs auto -sources %s`, ramp %d/s, hold %s after the ramp.\n\n",
		c.Procs, 9000+c.Procs-1, c.MaxConns, c.Interval, c.Sources, c.Rate, c.Hold)
	// wsload's own result.json, embedded; figures stay 0 if it is unreadable
	var w result.Result
	_ = json.Unmarshal(r.Wsload, &w)
	avg := 0.0
	if w.DurationS > 0 {
		avg = float64(w.Messages) / w.DurationS
	}
	b.WriteString("| figure | value | goal |\n|---|---:|---|\n")
	fmt.Fprintf(b, "| connections wanted | %d | |\n", c.Conns)
	fmt.Fprintf(b, "| established (wsload) | %d | |\n", r.Established)
	fmt.Fprintf(b, "| open at once: wsload peak / servers' own count at the sample | %d / %d | 1,000,000 held: %s |\n", r.Peak, r.AtSample, yes(r.AtSample >= 990_000))
	if r.RampS > 0 {
		fmt.Fprintf(b, "| ramp time (to 99%% held, servers' count) | %.0f s (%.0f/s) | |\n", r.RampS, 0.99*float64(c.Conns)/r.RampS)
	}
	fmt.Fprintf(b, "| ticks offered at 1M | %.0f /s | |\n", float64(c.Conns)/c.Interval.Seconds())
	fmt.Fprintf(b, "| ticks delivered: whole-run average (ramp included) | %.0f /s | 100k/s: %s |\n", avg, yes(avg >= 100_000))
	if s := r.Steady; s.WindowS > 0 {
		fmt.Fprintf(b, "| ticks delivered after the ramp (%.0f s window, at least %d held) | %.0f /s, lag p99 %.0f ms | 100k/s: %s |\n",
			s.WindowS, s.MinConns, s.MsgsPerSec, s.LagP99MS, yes(s.MsgsPerSec >= 100_000))
	}
	fmt.Fprintf(b, "| lag p50 / p99 / max (whole run, wsload) | %.0f / %.0f / %.0f ms | p99 ≤ 100 ms: %s |\n", w.LagMS.P50, w.LagMS.P99, w.LagMS.Max, yes(w.LagMS.P99 > 0 && w.LagMS.P99 <= 100))
	fmt.Fprintf(b, "| gaps (whole run) | %d | 0: %s |\n", r.Gaps, yes(r.Gaps == 0 && r.Established > 0))
	fmt.Fprintf(b, "| server RSS, summed (at plateau) | %.2f GiB (%.0f B/conn above the idle processes) | |\n", float64(r.ServerRSS)/(1<<30), r.RSSPerConn)
	fmt.Fprintf(b, "| kernel Slab delta | %.2f GiB (%.0f B/conn, both ends) | |\n", float64(r.SlabDelta)/(1<<30), r.SlabPerConn)
	fmt.Fprintf(b, "| server CPU (plateau) | %.2f cores | |\n", r.ServerCores)
	fmt.Fprintf(b, "| wsload RSS/conn | %.0f B | |\n", r.WsloadRSSPeak)
	fmt.Fprintf(b, "| wsload-bound | %v | |\n", r.WsloadBound)
	if len(r.Errors) > 0 || len(r.Disconnects) > 0 {
		fmt.Fprintf(b, "| errors / disconnects | %v / %v | |\n", r.Errors, r.Disconnects)
	}
	if r.Err != "" {
		fmt.Fprintf(b, "\nThe run ended with: `%s`\n", r.Err)
	}
	fmt.Fprintf(b, "\n![1M](%s/bench-1m.png)\n\n", img)
}
