package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"wspush/bench/internal/cpuquota"
	"wspush/bench/internal/env"
	"wspush/bench/internal/scenario"
	"wspush/bench/internal/target"
)

// runConfig is `wsbench run`'s flags.
type runConfig struct {
	quick, full bool
	root        string
	outDir      string
	md          string
	imgDir      string
	targets     string
	scenarios   string
	conns       int
	rate        int
	rounds      int
	steps       int
	serverCPUs  string
	loadCPUs    string
	serverCores float64
	fixedConns  int
	fixedIvals  string
	fixedCores  float64
	noBuild     bool
	quietBelow  float64
	quietWait   time.Duration
}

func (c *runConfig) flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.quick, "quick", false, "ticks at 5k connections for every target, ≤ 5 min (make bench)")
	fs.BoolVar(&c.full, "full", false, "all scenarios at 19k connections, 2 rounds (make bench-full)")
	fs.StringVar(&c.root, "root", ".", "repository root")
	fs.StringVar(&c.outDir, "out", "bench/results", "directory for <date>-<scenario>.json")
	fs.StringVar(&c.md, "md", "docs/benchmarks.md", "regenerate this report after the run (\"\" = don't)")
	fs.StringVar(&c.imgDir, "img", "docs/img", "directory for the bench-*.png charts")
	fs.StringVar(&c.targets, "targets", strings.Join(target.Names, ","), "targets, comma list")
	fs.StringVar(&c.scenarios, "scenarios", "", "scenarios, comma list of fixed,ticks,idle,broadcast,connect (default by mode: quick ticks, full all)")
	fs.IntVar(&c.conns, "conns", 0, "connections N (default 5000 quick, 19000 full)")
	fs.IntVar(&c.rate, "rate", 4000, "connection ramp per second")
	fs.IntVar(&c.rounds, "rounds", 0, "rounds of idle/broadcast/connect (default 1 quick, 2 full)")
	fs.IntVar(&c.steps, "steps", 0, "bisection steps of the ticks search (default 4 quick, 5 full)")
	fs.IntVar(&c.fixedConns, "fixed-conns", 0, "connections of the fixed-rate trials (0 = 10000)")
	fs.StringVar(&c.fixedIvals, "fixed-intervals", "", "push intervals of the fixed-rate trials, comma list (\"\" = 500ms,250ms)")
	fs.Float64Var(&c.fixedCores, "fixed-cores", 0, "cap each target's CPU in the fixed-rate trials (cores; 0 = uncapped): with -fixed-intervals near the saturation point, a repeated comparison at saturation")
	fs.StringVar(&c.serverCPUs, "server-cpus", "0", "taskset -c for servers")
	fs.StringVar(&c.loadCPUs, "load-cpus", "1", "taskset -c for wsload")
	fs.Float64Var(&c.serverCores, "server-cores", 0.5, "cap each target's CPU at this many cores in the ticks search (cgroup CFS limit; needs root; 0 = no cap): wsload keeps twice the server's CPU, so the target saturates first")
	fs.BoolVar(&c.noBuild, "no-build", false, "do not go build the binaries first")
	fs.Float64Var(&c.quietBelow, "quiet-below", 0.5, "before each trial wait until other processes use less than this many cores (0 = don't wait)")
	fs.DurationVar(&c.quietWait, "quiet-wait", 30*time.Second, "longest wait for -quiet-below")
}

func cmdRun(ctx context.Context, args []string) error {
	var c runConfig
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	c.flags(fs)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	if c.quick == c.full {
		return errors.New("wsbench: give exactly one of -quick or -full")
	}
	mode, defConns, defRounds, defSteps, defScen := "quick", 5000, 1, 4, "ticks"
	if c.full {
		mode, defConns, defRounds, defSteps, defScen = "full", 19000, 2, 5, "fixed,ticks,idle,broadcast,connect"
	}
	c.conns = pick(c.conns, defConns)
	c.rounds = pick(c.rounds, defRounds)
	c.steps = pick(c.steps, defSteps)
	if c.quick && c.quietWait > 2*time.Second {
		c.quietWait = 2 * time.Second // 20 trials: at most 40 s of waiting
	}
	if c.scenarios == "" {
		c.scenarios = defScen
	}
	root, err := filepath.Abs(c.root)
	if err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	e, err := prepare(ctx, root, c.targets, c.noBuild)
	if err != nil {
		return err
	}
	e.ServerCPUs, e.LoadCPUs = c.serverCPUs, c.loadCPUs
	if c.serverCores > 0 && strings.Contains(","+c.scenarios+",", ",ticks,") {
		if err := cpuquota.Available(); err != nil {
			e.Log("no CPU cap for the ticks search (%v): it runs uncapped, and a target faster than wsload shows as load-bound", err)
			c.serverCores = 0
		}
	}
	e.ServerQuota = c.serverCores
	e.FixedConns, e.FixedQuota = c.fixedConns, c.fixedCores
	for _, v := range strings.Split(c.fixedIvals, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("wsbench: -fixed-intervals: bad interval %q", v)
		}
		e.FixedIntervals = append(e.FixedIntervals, d)
	}
	e.QuietBelow, e.QuietWait = c.quietBelow, c.quietWait
	e.RetryUnderLoad = c.full // quick stays within its 5 minutes
	e.Conns, e.Rate, e.Rounds, e.Steps = c.conns, c.rate, c.rounds, c.steps
	info := env.Collect(root)
	outDir := abs(root, c.outDir)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	t0 := time.Now()
	for _, sc := range strings.Split(c.scenarios, ",") {
		f := &scenario.File{Schema: scenario.Schema, Scenario: sc, Mode: mode, Started: time.Now().UTC(), Env: info,
			Pinning: scenario.Pinning{Server: e.ServerCPUs, Load: e.LoadCPUs, ServerQuota: e.ServerQuota}, Conns: e.Conns, Rate: e.Rate, Rounds: e.Rounds, Targets: e.Targets}
		var err error
		switch sc {
		case "fixed":
			f.Fixed, err = scenario.Fixed(ctx, e)
		case "ticks":
			f.Ticks, err = scenario.Ticks(ctx, e)
		case "idle":
			f.Idle, err = scenario.Idle(ctx, e, max(1000, e.Conns/4))
		case "broadcast":
			f.Broadcast, err = scenario.Broadcast(ctx, e, 5)
		case "connect":
			f.Connect, err = scenario.Connect(ctx, e, scenario.ConnectOffered)
		default:
			return fmt.Errorf("wsbench: unknown scenario %q", sc)
		}
		f.Finished = time.Now().UTC()
		path := filepath.Join(outDir, fmt.Sprintf("%s-%s.json", f.Started.Format("2006-01-02T1504"), sc))
		if err != nil {
			// an interrupted or failed scenario is kept, but out of the report's glob
			f.Notes = append(f.Notes, "incomplete: "+err.Error())
			path += ".partial"
		}
		if serr := f.Save(path); serr != nil {
			return errors.Join(err, serr)
		}
		e.Log("wrote %s (%s, total %s)", path, f.Finished.Sub(f.Started).Round(time.Second), time.Since(t0).Round(time.Second))
		if err != nil {
			return err
		}
	}
	if c.md == "" {
		return nil
	}
	files, _ := filepath.Glob(filepath.Join(outDir, "*.json"))
	return writeReport(abs(root, c.md), abs(root, c.imgDir), files)
}

func pick(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// prepare builds the binaries, installs node-ws if needed and makes the
// scenario environment with a fresh work directory for logs.
func prepare(ctx context.Context, root, targets string, noBuild bool) (*scenario.Env, error) {
	if !noBuild {
		if err := target.Build(ctx, root); err != nil {
			return nil, err
		}
	}
	names := strings.Split(targets, ",")
	for _, n := range names {
		if n == "node-ws" {
			if err := target.EnsureNode(ctx, root); err != nil {
				return nil, err
			}
		}
	}
	work, err := os.MkdirTemp("", "wsbench-")
	if err != nil {
		return nil, fmt.Errorf("wsbench: %w", err)
	}
	e := &scenario.Env{Root: root, WorkDir: work, Targets: names,
		Log: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
		}}
	e.Log("work dir (logs, raw wsload outputs) %s", work)
	return e, nil
}

// abs resolves p against root unless it is absolute.
func abs(root, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}
