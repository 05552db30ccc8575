package render

import (
	"fmt"
	"sort"
	"strings"

	"wspush/bench/internal/scenario"
)

// writeBcast1M is the section of `wsbench bcast1m`: one broadcast at a time
// to 1M clients over 60 processes of the floor peer, of wspush (both
// broadcast through every process's admin API) and of wspush nodes joined
// by NATS (broadcast through node 0), side by side.
func writeBcast1M(b *strings.Builder, files []*scenario.File) {
	// every run, by target then time: a fix shows as a later run
	order := map[string]int{}
	for i, t := range scenario.Bcast1MTargets {
		order[t] = i
	}
	var fs []*scenario.File
	latest := map[string]*scenario.File{}
	for _, f := range files {
		if f.Bcast1M == nil || f.Bcast1M.Config.Conns < 1_000_000 {
			continue
		}
		fs = append(fs, f)
		if l := latest[f.Bcast1M.Config.Target]; l == nil || f.Started.After(l.Started) {
			latest[f.Bcast1M.Config.Target] = f
		}
	}
	if len(fs) == 0 {
		return
	}
	sort.SliceStable(fs, func(i, j int) bool {
		ti, tj := order[fs[i].Bcast1M.Config.Target], order[fs[j].Bcast1M.Config.Target]
		return ti < tj || ti == tj && fs[i].Started.Before(fs[j].Started)
	})
	b.WriteString("## One broadcast to 1M clients: wspush beside the floor\n\n")
	c := fs[0].Bcast1M.Config
	var runs []string
	for _, f := range fs {
		rc := f.Bcast1M.Config
		runs = append(runs, fmt.Sprintf("%s %s: %d every %s", rc.Target, f.Started.UTC().Format("15:04"), rc.Broadcasts, rc.Every))
	}
	fmt.Fprintf(b, "`wsbench bcast1m -target T` (`make bench-bcast1m`): %d clients over %d processes of the target (ports %d…, admin %d…; wspush `-max-conns %d`, no ticks, pings or idle timeout; "+
		"the floor peer with a 24 h tick interval), wsload `publish -broadcast -procs auto -sources %s` (no subscriptions: the clients get the server's broadcasts), ramp %d/s; "+
		"then broadcasts one at a time (%s). **floor** and **wspush**: each broadcast is POSTed to every process's `/v1/broadcast` at once and each process writes it to its own clients "+
		"(encoded once per process); **wspush-nats**: the nodes are joined by a nats-server and the broadcast is POSTed to node 0 only. Everything, the clients included, on the same 2 cores. "+
		"Every run in bench/results is listed; the ratio takes each target's latest run.\n\n",
		c.Conns, c.Procs, c.Port, c.AdminPort, c.MaxConns, c.Sources, c.Rate, strings.Join(runs, "; "))
	b.WriteString("Arrival times are wsload's: its read − the message's `ts` (when the process accepted the broadcast). " +
		"Fan-out per process: floor — the POST's round trip (it answers once its clients are written to); wspush — until its `messages_delivered` grew by its client count (polled every 100 ms). " +
		"CPU seconds over a window from the broadcast on (`window_s` in the file, 38–40 s, so idle costs after the last delivery are in it; the machine's includes other processes), vmstat averaged until the last process was done.\n\n")
	b.WriteString("| target | run (commit) | broadcast | clients | first delivery | p50 | p99 | last delivery | fan-out per process: fastest / median / slowest | CPU: servers / wsload / machine | per delivery, idle cost taken out: servers / wsload | vmstat r avg (max) | cs/s | us / sy / id % |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---:|---:|---|\n")
	last := map[string]float64{}
	for _, f := range fs {
		r := f.Bcast1M
		for _, x := range r.Broadcasts {
			lo, med, hi := spread(x.DoneMS)
			fmt.Fprintf(b, "| %s | %s | %d | %d | %s | %s | %s | **%s** | %s / %s / %s | %.1f / %.1f / %.1f s | %s / %s | %.1f (%d) | %.0f | %.0f / %.0f / %.0f |\n",
				r.Config.Target, f.Started.UTC().Format("01-02 15:04")+" "+short(f.Env.Commit), x.N, x.Conns, dur(x.FirstMS), dur(x.P50MS), dur(x.P99MS), dur(x.LastMS),
				dur(lo), dur(med), dur(hi), x.ServerCPUS, x.WsloadCPUS, x.MachineCPUS, perDelivery(x.ServerCPUS-r.IdleServerCores*x.WindowS, x.Conns), perDelivery(x.WsloadCPUS-r.IdleWsloadCores*x.WindowS, x.Conns), x.RunQueueAvg, x.RunQueueMax, x.CtxSwitchAvg, x.UserPct, x.SysPct, x.IdlePct)
			if latest[r.Config.Target] == f && x.LastMS > 0 && (last[r.Config.Target] == 0 || x.LastMS < last[r.Config.Target]) {
				last[r.Config.Target] = x.LastMS
			}
		}
	}
	b.WriteString("\n")
	for _, f := range fs {
		for _, n := range f.Notes {
			fmt.Fprintf(b, "- note on %s %s: %s\n", f.Bcast1M.Config.Target, f.Started.UTC().Format("15:04"), n)
		}
	}
	for _, f := range fs {
		r := f.Bcast1M
		idle := "not measured (a run from before the idle sample)"
		if r.IdleServerCores > 0 || r.IdleWsloadCores > 0 {
			idle = fmt.Sprintf("servers %.2f cores, wsload %.2f cores", r.IdleServerCores, r.IdleWsloadCores)
		}
		fmt.Fprintf(b, "- %s %s: %d of %d deliveries, gaps %d, duplicates %d, wsload-bound %v; idle (10 s before broadcast 1): %s",
			r.Config.Target, f.Started.UTC().Format("15:04"), r.Deliveries, r.Expected, r.Gaps, r.Duplicates, r.WsloadBound, idle)
		if len(r.Disconnects) > 0 || len(r.Errors) > 0 {
			fmt.Fprintf(b, ", disconnects %s, errors %s", classes(r.Disconnects), classes(r.Errors))
		}
		if r.Err != "" {
			fmt.Fprintf(b, "; the run ended with `%s`", r.Err)
		}
		b.WriteString("\n")
	}
	for _, f := range fs {
		r := f.Bcast1M
		var srv, wl, mach float64
		for _, x := range r.Broadcasts {
			srv += x.ServerCPUS
			wl += x.WsloadCPUS
			mach += x.MachineCPUS
		}
		if mach > 0 {
			rest := fmt.Sprintf("the rest %.0f %% (kernel work outside both — softirq — and other processes on the box)", 100*(mach-srv-wl)/mach)
			if srv+wl > mach {
				// wsload's CPU comes from its per-second series, whose seconds
				// do not line up exactly with the machine's window
				rest = fmt.Sprintf("the rest ≈ 0 (the two add up to %.0f %% of the machine's: their samples span slightly different seconds)", 100*(srv+wl)/mach)
			}
			fmt.Fprintf(b, "- %s %s, CPU over the broadcast windows: servers %.0f %%, wsload %.0f %%, %s\n",
				r.Config.Target, f.Started.UTC().Format("15:04"), 100*srv/mach, 100*wl/mach, rest)
		}
	}
	if fl := last["floor"]; fl > 0 {
		for _, t := range []string{"wspush", "wspush-nats"} {
			if w := last[t]; w > 0 {
				fmt.Fprintf(b, "- time to reach the last client, best broadcast of each target's latest run: %s %s / floor %s = **%.2f×** (goal ≤ 1.3×)\n", t, dur(w), dur(fl), w/fl)
			}
		}
	}
	b.WriteString("\nHow to read it: each delivery is one `write(2)` by a server process and one read by a wsload worker, " +
		"and at 1M about 60 server and 52 wsload processes are runnable at once on the same 2 cores (vmstat's run queue), " +
		"so the time to reach the last client is the machine's CPU per delivery — server, wsload and the kernel's loopback work together — " +
		"times 1M over 2 cores. The ratio to the floor is therefore that of the whole per-delivery cost; the servers' own share is the " +
		"\"per delivery\" column (idle cost taken out). Other processes on the box (tests, builds) land in \"the rest\" and slow both alike.\n\n")
}

// perDelivery is CPU seconds per delivery, in µs.
func perDelivery(cpuS float64, n int) string {
	if n <= 0 || cpuS <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f µs", cpuS*1e6/float64(n))
}

// spread is the smallest, median and largest of the positive values.
func spread(xs []float64) (lo, med, hi float64) {
	var v []float64
	for _, x := range xs {
		if x > 0 {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0, 0, 0
	}
	sort.Float64s(v)
	return v[0], v[len(v)/2], v[len(v)-1]
}

// short is a commit's first 7 characters.
func short(c string) string {
	if len(c) > 7 {
		return c[:7]
	}
	return c
}
