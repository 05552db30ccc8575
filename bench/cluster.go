package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"wspush/bench/internal/env"
	"wspush/bench/internal/scenario"
)

// cmdCluster is `wsbench cluster`: one publish at a time to (by default)
// 1,000,000 clients spread over 60 wspush nodes joined by NATS JetStream;
// the work is scenario.Cluster.
func cmdCluster(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	var c scenario.ClusterConfig
	root := fs.String("root", ".", "repository root (bin/, go.mod for the nats-server build)")
	outDir := fs.String("out", "bench/results", "results directory")
	md := fs.String("md", "docs/benchmarks.md", "regenerate this report after the run (\"\" = don't)")
	noBuild := fs.Bool("no-build", false, "do not go build bin/wspush, bin/wsload first")
	fs.IntVar(&c.Conns, "conns", 1_000_000, "subscribers of the one topic (0 = default)")
	fs.IntVar(&c.Procs, "procs", 60, "wspush nodes, ports -port… and -admin-port… (0 = default)")
	fs.IntVar(&c.MaxConns, "max-conns", 17000, "-max-conns per node (0 = default)")
	fs.IntVar(&c.Rate, "rate", 4000, "ramp, connections per second (0 = default)")
	fs.IntVar(&c.Publishes, "publishes", 2, "publishes, one at a time, through node 0 (0 = default)")
	fs.DurationVar(&c.PubEvery, "pub-every", time.Minute, "time between publishes (0 = default)")
	fs.DurationVar(&c.PubAfter, "pub-after", 0, "first publish this long after wsload starts (0 = conns/rate × 1.25 + 20s)")
	fs.DurationVar(&c.Settle, "settle", 30*time.Second, "run on this long after the last publish's slot (0 = default)")
	fs.DurationVar(&c.Grace, "grace", time.Minute, "wsload -grace: wait for in-flight deliveries, at most 1m (0 = default)")
	fs.StringVar(&c.Sources, "sources", "127.0.0.2-127.0.0.60", "wsload -sources (\"\" = default)")
	fs.Float64Var(&c.MinFreeG, "min-free-gib", 16, "refuse to start with less MemAvailable (0 = default)")
	fs.IntVar(&c.Port, "port", 9000, "first node's WebSocket port (0 = default)")
	fs.IntVar(&c.AdminPort, "admin-port", 10000, "first node's admin port (0 = default)")
	fs.IntVar(&c.Topics, "topics", 1, "topics the subscribers are spread over, publishes round robin (0 = default)")
	fs.DurationVar(&c.Ticks, "ticks", 0, "nodes' -push-interval: 0 = no ticks (5s with -presence); with ticks the nodes' CPU per tick is measured before the first publish")
	fs.StringVar(&c.Bin, "bin", "", "directory of the wspush and wsload executables (\"\" = <root>/bin; with -no-build, built beforehand)")
	fs.BoolVar(&c.Presence, "presence", false, "clients subscribe with \"presence\":true; wsload checks every client's last count against its topic's subscribers")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	e, err := prepare(ctx, absRoot, "wspush", *noBuild)
	if err != nil {
		return err
	}
	e.Conns, e.Rate, e.Rounds = c.Conns, c.Rate, 1
	e.Log("cluster: %d connections over %d nodes and %d topic(s), ticks every %s, presence %v, %d publishes every %s from %s on; wsload -duration %s",
		c.Conns, c.Procs, c.Topics, c.Ticks, c.Presence, c.Publishes, c.PubEvery, c.PubAfter, c.Duration())
	name := "cluster"
	if c.Ticks > 0 {
		name = "cluster-ticks" // reported apart: the ticks' and presence's cost (render.writeClusterTicks)
	}
	f := &scenario.File{Schema: scenario.Schema, Scenario: name, Mode: "cluster", Started: time.Now().UTC(), Env: env.Collect(absRoot),
		Conns: c.Conns, Rate: c.Rate, Rounds: 1, Targets: []string{"wspush"}}
	r, runErr := scenario.Cluster(ctx, e, c)
	if runErr != nil {
		r.Err = runErr.Error()
	}
	f.Cluster = r
	f.Finished = time.Now().UTC()
	dir := abs(absRoot, *outDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	path := filepath.Join(dir, f.Started.Format("2006-01-02T1504")+"-"+name+".json")
	if r.Wsload == nil {
		// nothing measured: keep the record, out of the report's glob
		f.Notes = append(f.Notes, "incomplete: "+r.Err)
		path += ".partial"
	}
	if err := f.Save(path); err != nil {
		return err
	}
	e.Log("wrote %s: %d publishes, %d of %d deliveries (lost %d, gaps %d, history_gone %d), end-to-end p50 %.0f / p99 %.0f / max %.0f ms, all reached: %v",
		path, r.PublishesSent, r.Deliveries, r.Expected, r.Lost, r.Gaps, r.HistoryGone, r.LatencyMS.P50, r.LatencyMS.P99, r.LatencyMS.Max, r.AllReached)
	e.Log("nodes' RSS %.0f B/conn (%.0f above the idle nodes); %s", r.RSSTotalPerConn, r.RSSPerConn, tickLine(r))
	if *md != "" && r.Wsload != nil {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		if err := writeReport(abs(absRoot, *md), abs(absRoot, "docs/img"), files); err != nil {
			return err
		}
	}
	return runErr
}

// tickLine is the tick phase's and presence check's figures for the log.
func tickLine(r *scenario.ClusterResult) string {
	s := "no tick phase measured"
	if p := r.TickPhase; p != nil {
		s = fmt.Sprintf("tick phase %.0f–%.0f s: %d ticks (%.0f/s), nodes' CPU %.1f s = %.2f µs per tick (%.2f cores)",
			p.FromS, p.ToS, p.Ticks, p.TicksPerSec, p.CPUSeconds, p.CPUPerTickUS, p.CPUCores)
	}
	if r.Config.Presence {
		s += fmt.Sprintf("; presence: %d of %d ticks carried counts, %d clients checked, all right: %v %q",
			r.PresenceTicks, r.Ticks, r.PresenceSubs, r.PresenceOK, r.PresenceBad)
		if cv := r.Convergence; cv != nil {
			s += fmt.Sprintf("; nodes' counts converged: %v at %.0f s (%.0f s after the plateau; deadline %.0f s, max lease %d ms, %d rounds, %d requests, %d failed, %d stale %q), clients' check a tick after it: %v",
				cv.Converged, cv.AtS, cv.AfterS, cv.DeadlineS, cv.MaxLeaseMS, cv.Rounds, cv.Requests, cv.Failed, cv.StaleCount, cv.Stale, cv.ClientCheckAfter)
		}
		if p := r.PresenceProtocol; p != nil {
			s += fmt.Sprintf("; presence protocol on %d nodes (fewest nodes seen %d): syncs sent %d, received %d (most by one node %d), probes %d/%d, full reports %d, gaps %d, gone once %d, drops gone %d silent %d, stalls %d",
				p.Nodes, p.MinNodesSeen, p.SyncsSent, p.SyncsReceived, p.MaxSyncsReceived, p.ProbesSent, p.ProbesReceived,
				p.FullReports, p.Gaps, p.GoneOnce, p.GoneDrops, p.SilentDrops, p.Stalls)
		}
	}
	return s
}
