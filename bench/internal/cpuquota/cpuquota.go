// Package cpuquota caps the CPU time a set of processes may use with a
// cgroup's CFS bandwidth limit: at most Cores × Period of CPU time in every
// Period, whatever CPUs they run on. wsbench uses it to give a server less
// CPU than the load generator has, so that in a saturation search the
// server, not the load generator, runs out first.
//
// Both cgroup layouts are supported: v1 (the cpu controller mounted at
// /sys/fs/cgroup/cpu: cpu.cfs_quota_us, cpu.cfs_period_us, cgroup.procs)
// and v2 (/sys/fs/cgroup with "cpu" in cgroup.controllers: cpu.max). It
// needs permission to create a cgroup (root); New says why when it cannot.
//
// Concurrency: a Group is used by one goroutine (the one that starts and
// stops the processes); it holds no goroutines.
package cpuquota

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultPeriod is the CFS period when New is given 0: short, so a capped
// process waits at most a few milliseconds when its quota is spent, which
// keeps the added lag far below wsbench's 100 ms criterion.
const DefaultPeriod = 10 * time.Millisecond

// Roots where the cgroup file systems are looked for.
const (
	v1Root = "/sys/fs/cgroup/cpu"
	v2Root = "/sys/fs/cgroup"
)

var seq atomic.Int64

// Group is one cgroup with a CPU bandwidth limit.
type Group struct {
	dir    string // the cgroup's directory
	parent string // where its processes go back to on Close
	v2     bool
}

// New creates a cgroup named name-<pid>-<n> with a limit of cores CPUs'
// worth of time per period (0 = DefaultPeriod).
func New(name string, cores float64, period time.Duration) (*Group, error) {
	if _, err := os.Stat(filepath.Join(v2Root, "cgroup.controllers")); err == nil {
		return newAt(v2Root, true, name, cores, period)
	}
	if _, err := os.Stat(filepath.Join(v1Root, "cpu.cfs_quota_us")); err == nil {
		return newAt(v1Root, false, name, cores, period)
	}
	return nil, errors.New("cpuquota: no cgroup cpu controller (neither " + v1Root + "/cpu.cfs_quota_us nor " + v2Root + "/cgroup.controllers)")
}

// newAt is New on the cgroup root dir, layout v1 or v2 (a test passes a
// temporary directory).
func newAt(root string, v2 bool, name string, cores float64, period time.Duration) (*Group, error) {
	if period <= 0 {
		period = DefaultPeriod
	}
	if cores <= 0 {
		return nil, fmt.Errorf("cpuquota: cores must be > 0, got %g", cores)
	}
	periodUS := period.Microseconds()
	quotaUS := int64(cores * float64(periodUS))
	if periodUS < 1000 || quotaUS < 1000 {
		// the kernel refuses periods and quotas under 1 ms
		return nil, fmt.Errorf("cpuquota: period %v × %g cores is under the kernel's 1 ms minimum", period, cores)
	}
	if v2 {
		if err := enableCPU(root); err != nil {
			return nil, err
		}
	}
	g := &Group{parent: root, v2: v2,
		dir: filepath.Join(root, fmt.Sprintf("%s-%d-%d", name, os.Getpid(), seq.Add(1)))}
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		return nil, fmt.Errorf("cpuquota: %w", err)
	}
	var err error
	if v2 {
		err = g.write("cpu.max", fmt.Sprintf("%d %d", quotaUS, periodUS))
	} else {
		// the period first: the quota is checked against it
		err = g.write("cpu.cfs_period_us", strconv.FormatInt(periodUS, 10))
		if err == nil {
			err = g.write("cpu.cfs_quota_us", strconv.FormatInt(quotaUS, 10))
		}
	}
	if err != nil {
		_ = os.Remove(g.dir)
		return nil, err
	}
	return g, nil
}

// enableCPU turns the cpu controller on for root's children (v2).
func enableCPU(root string) error {
	b, err := os.ReadFile(filepath.Join(root, "cgroup.subtree_control"))
	if err != nil {
		return fmt.Errorf("cpuquota: %w", err)
	}
	for _, c := range strings.Fields(string(b)) {
		if c == "cpu" {
			return nil
		}
	}
	if err := os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("+cpu"), 0o644); err != nil {
		return fmt.Errorf("cpuquota: enable the cpu controller: %w", err)
	}
	return nil
}

func (g *Group) write(file, value string) error {
	if err := os.WriteFile(filepath.Join(g.dir, file), []byte(value), 0o644); err != nil {
		return fmt.Errorf("cpuquota: write %q to %s: %w", value, file, err)
	}
	return nil
}

// Dir is the cgroup's directory.
func (g *Group) Dir() string { return g.dir }

// Add moves process pid, all its threads and the ones it starts later,
// into the group.
func (g *Group) Add(pid int) error { return g.write("cgroup.procs", strconv.Itoa(pid)) }

// Stat is the group's CPU bandwidth accounting since it was created.
type Stat struct {
	Periods   int64         // CFS periods in which a member was runnable
	Throttled int64         // periods in which the quota ran out
	Waited    time.Duration // total time members were held back
}

// ThrottledShare is the share of periods in which the quota ran out: near
// 1, the members wanted more CPU than the limit in almost every period.
func (s Stat) ThrottledShare() float64 {
	if s.Periods == 0 {
		return 0
	}
	return float64(s.Throttled) / float64(s.Periods)
}

// Sub is s minus an earlier reading.
func (s Stat) Sub(earlier Stat) Stat {
	return Stat{s.Periods - earlier.Periods, s.Throttled - earlier.Throttled, s.Waited - earlier.Waited}
}

// Stat reads cpu.stat.
func (g *Group) Stat() (Stat, error) {
	b, err := os.ReadFile(filepath.Join(g.dir, "cpu.stat"))
	if err != nil {
		return Stat{}, fmt.Errorf("cpuquota: %w", err)
	}
	return parseStat(b, g.v2), nil
}

// parseStat reads cpu.stat's nr_periods, nr_throttled and throttled_time
// (v1, nanoseconds) or throttled_usec (v2).
func parseStat(b []byte, v2 bool) Stat {
	var s Stat
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "nr_periods":
			s.Periods = n
		case "nr_throttled":
			s.Throttled = n
		case "throttled_time":
			if !v2 {
				s.Waited = time.Duration(n)
			}
		case "throttled_usec":
			if v2 {
				s.Waited = time.Duration(n) * time.Microsecond
			}
		}
	}
	return s
}

// Close moves whatever is still in the group back to the parent and
// removes the group.
func (g *Group) Close() error {
	if b, err := os.ReadFile(filepath.Join(g.dir, "cgroup.procs")); err == nil {
		for _, p := range strings.Fields(string(b)) {
			_ = os.WriteFile(filepath.Join(g.parent, "cgroup.procs"), []byte(p), 0o644)
		}
	}
	var err error
	for i := 0; i < 50; i++ { // exiting members leave a moment after they die
		if err = os.Remove(g.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("cpuquota: remove %s: %w", g.dir, err)
}

// Available says whether a group can be made here: nil, or why not.
func Available() error {
	g, err := New("cpuquota-probe", 0.5, 0)
	if err != nil {
		return err
	}
	return g.Close()
}
