// Package scenario runs wsbench's measurements — idle hold, ticks (push
// rate search), broadcast and connect — against each target in turn,
// round by round (A B C … A B C …) so slow drift of the machine spreads
// over all targets alike. Servers are pinned to Env.ServerCPUs, wsload to
// Env.LoadCPUs. OneMillion (1M connections to many wspush processes) and
// Cluster (one publish at a time to many clients over wspush nodes joined
// by a nats-server it builds and starts; fleet.go) are single runs.
//
// Concurrency: a scenario function runs its trials one after another on
// the caller's goroutine (at most one target and one load generator run at
// a time); it starts short-lived sampling goroutines that end before it
// returns. Cancel ctx to stop; every child process is killed on return.
package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"wspush/bench/internal/procstat"
	"wspush/bench/internal/target"
)

// Env is what every scenario shares.
type Env struct {
	Root       string   // repository root
	WorkDir    string   // logs and wsload outputs of this run
	Targets    []string // target names, in order
	ServerCPUs string   // taskset -c for servers
	LoadCPUs   string   // taskset -c for wsload and the broadcast client
	Conns      int      // N
	Rate       int      // connection ramp, per second
	Rounds     int      // repetitions of each measurement (A B A B)
	Steps      int      // bisection steps of the ticks search
	// ServerQuota caps each target's CPU in the ticks search (cores, a
	// cgroup limit; 0 = none) so that the target saturates well before
	// wsload, which has a whole core; the fixed-rate trials run uncapped.
	ServerQuota float64
	// FixedConns, FixedIntervals and FixedQuota change the fixed-rate
	// trials (zero: the package's FixedConns and FixedIntervals, uncapped),
	// e.g. for a comparison near saturation under a CPU cap.
	FixedConns     int
	FixedIntervals []time.Duration
	FixedQuota     float64
	Log            func(format string, args ...any)
	// QuietBelow and QuietWait gate every trial: before starting, wait up
	// to QuietWait until the machine's busy CPU (nothing of ours runs
	// then) is below QuietBelow cores. 0 disables the gate.
	QuietBelow float64
	QuietWait  time.Duration
	// RetryUnderLoad repeats a failed ticks trial once when other
	// processes took more than RetryForeign cores during it.
	RetryUnderLoad bool
}

// waitQuiet waits until the machine is quiet (see Env.QuietBelow) and
// returns the last busy figure seen, in cores.
func (e *Env) waitQuiet(ctx context.Context) float64 {
	if e.QuietBelow <= 0 {
		return 0
	}
	deadline := time.Now().Add(e.QuietWait)
	for {
		m0, err := procstat.MachineBusySeconds()
		if err != nil {
			return 0
		}
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(time.Second):
		}
		m1, _ := procstat.MachineBusySeconds()
		busy := m1 - m0
		if busy < e.QuietBelow || time.Now().After(deadline) {
			if busy >= e.QuietBelow {
				e.logf("machine still busy (%.2f cores from other processes) after %v; going ahead", busy, e.QuietWait)
			}
			return busy
		}
	}
}

func (e *Env) logf(format string, args ...any) {
	if e.Log != nil {
		e.Log(format, args...)
	}
}

// port layout: WebSocket ports from 9000, admin ports from 9500.
const (
	basePort  = 9000
	adminBase = 9500
)

func (e *Env) spec(name string, interval time.Duration) target.Spec {
	return target.Spec{
		Name: name, Root: e.Root, Procs: 1, BasePort: basePort, AdminBase: adminBase,
		Interval: interval, CPUs: e.ServerCPUs, LogDir: filepath.Join(e.WorkDir, "logs"),
	}
}

// loadRaw keeps a wsload result in the report as raw JSON.
func loadRaw(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}

// countSockets is the number of socket descriptors pids hold.
func countSockets(pids []int) int {
	n := 0
	for _, p := range pids {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p, e.Name())); err == nil && len(l) > 7 && l[:7] == "socket:" {
				n++
			}
		}
	}
	return n
}

// waitSockets waits until pids hold at least want sockets or d passes.
func waitSockets(ctx context.Context, pids []int, want int, d time.Duration) (int, error) {
	deadline := time.Now().Add(d)
	for {
		n := countSockets(pids)
		if n >= want {
			return n, nil
		}
		if time.Now().After(deadline) {
			return n, fmt.Errorf("wsbench: %d sockets after %v, want %d", n, d, want)
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// cpuOver is the CPU (in cores) pids used over window.
func cpuOver(ctx context.Context, pids []int, window time.Duration) (float64, error) {
	c, _, err := cpuAndMachine(ctx, pids, window)
	return c, err
}

// cpuAndMachine is the CPU (in cores) pids used over window, and what the
// whole machine used (so other load on the box shows up in the record).
func cpuAndMachine(ctx context.Context, pids []int, window time.Duration) (float64, float64, error) {
	c0, err := procstat.SumCPU(pids)
	if err != nil {
		return 0, 0, err
	}
	m0, _ := procstat.MachineBusySeconds()
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	case <-time.After(window):
	}
	c1, err := procstat.SumCPU(pids)
	if err != nil {
		return 0, 0, err
	}
	m1, _ := procstat.MachineBusySeconds()
	el := time.Since(t0).Seconds()
	return (c1 - c0) / el, (m1 - m0) / el, nil
}

func stopTarget(r *target.Running) { r.Stop(15 * time.Second) }

// coresSample is one reading of the load CPUs' jiffies (ok false when
// they could not be read, or Env.LoadCPUs is not a CPU list).
type coresSample struct {
	busy, total int64
	ok          bool
}

// loadCoresSample reads the jiffies of the CPUs wsload is pinned to.
func (e *Env) loadCoresSample() coresSample {
	cpus, err := procstat.ParseCPUList(e.LoadCPUs)
	if err != nil {
		return coresSample{}
	}
	b, t, err := procstat.CPUSetBusy(cpus)
	return coresSample{b, t, err == nil}
}

// busyUntil is the share of the load CPUs' time from s to end that was
// busy; 0 when either reading failed.
func (s coresSample) busyUntil(end coresSample) float64 {
	if !s.ok || !end.ok {
		return 0
	}
	return procstat.BusyFraction(s.busy, s.total, end.busy, end.total)
}

// Summary fields shared by the per-target results.
type Pinning struct {
	Server string `json:"server_cpus"`
	Load   string `json:"load_cpus"`
	// ServerQuota is the cap on each target's CPU in the ticks search
	// (cores; 0 = none).
	ServerQuota float64 `json:"server_cpu_quota_cores,omitempty"`
}
