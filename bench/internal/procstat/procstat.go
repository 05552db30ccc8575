// Package procstat reads the figures wsbench samples from /proc: a
// process's resident set (VmRSS in /proc/PID/status), its CPU time
// (utime+stime in /proc/PID/stat), the kernel's Slab and MemAvailable from
// /proc/meminfo, and fits the per-connection slope of a memory figure.
//
// Concurrency: every function is a pure parser or a one-shot read of /proc;
// all are safe for concurrent use and keep no state.
package procstat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ClockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it
// is 100 on every Linux this runs on.
const ClockTicks = 100

// ParseStatusKB returns the value in kB of field (e.g. "VmRSS") in the text
// of /proc/PID/status or /proc/meminfo.
func ParseStatusKB(text []byte, field string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(text))
	prefix := field + ":"
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line[len(prefix):])
		if len(f) == 0 {
			return 0, fmt.Errorf("wsbench: procstat: empty %s", field)
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("wsbench: procstat: %s: %w", field, err)
		}
		return v, nil
	}
	return 0, fmt.Errorf("wsbench: procstat: no field %s", field)
}

// ParseStatCPU returns utime+stime in clock ticks from the text of
// /proc/PID/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after the last ')'.
func ParseStatCPU(text []byte) (int64, error) {
	i := bytes.LastIndexByte(text, ')')
	if i < 0 {
		return 0, errors.New("wsbench: procstat: stat without ')'")
	}
	f := strings.Fields(string(text[i+1:]))
	// after ')': state(3) ppid(4) ... utime is field 14, stime 15 → index 11, 12
	if len(f) < 13 {
		return 0, fmt.Errorf("wsbench: procstat: stat has %d fields after comm", len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("wsbench: procstat: utime/stime: %w", err)
	}
	return u + s, nil
}

// RSSBytes is the resident set of pid in bytes.
func RSSBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("wsbench: procstat: %w", err)
	}
	kb, err := ParseStatusKB(b, "VmRSS")
	return kb * 1024, err
}

// CPUSeconds is the user+system CPU time pid has used.
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("wsbench: procstat: %w", err)
	}
	t, err := ParseStatCPU(b)
	return float64(t) / ClockTicks, err
}

// SumRSS is the summed resident set of pids.
func SumRSS(pids []int) (int64, error) {
	var sum int64
	for _, p := range pids {
		v, err := RSSBytes(p)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// SumCPU is the summed CPU seconds of pids.
func SumCPU(pids []int) (float64, error) {
	var sum float64
	for _, p := range pids {
		v, err := CPUSeconds(p)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// Meminfo holds the /proc/meminfo fields wsbench uses, in bytes.
type Meminfo struct {
	Slab, SUnreclaim, MemAvailable, MemTotal int64
}

// ParseMeminfo reads the fields of Meminfo from the text of /proc/meminfo.
func ParseMeminfo(text []byte) (Meminfo, error) {
	var m Meminfo
	var errs []error
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"Slab", &m.Slab}, {"SUnreclaim", &m.SUnreclaim}, {"MemAvailable", &m.MemAvailable}, {"MemTotal", &m.MemTotal}} {
		kb, err := ParseStatusKB(text, f.name)
		errs = append(errs, err)
		*f.dst = kb * 1024
	}
	return m, errors.Join(errs...)
}

// ReadMeminfo reads /proc/meminfo.
func ReadMeminfo() (Meminfo, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return Meminfo{}, fmt.Errorf("wsbench: procstat: %w", err)
	}
	return ParseMeminfo(b)
}

// Slope is the least-squares slope dy/dx of the points (xs[i], ys[i]) —
// with two points, simply (y2−y1)/(x2−x1). It fails with fewer than two
// points or when all xs are equal.
func Slope(xs, ys []float64) (float64, error) {
	if len(xs) != len(ys) || len(xs) < 2 {
		return 0, fmt.Errorf("wsbench: procstat: slope needs ≥2 paired points, got %d/%d", len(xs), len(ys))
	}
	n := float64(len(xs))
	var sx, sy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
	}
	mx, my := sx/n, sy/n
	var num, den float64
	for i := range xs {
		num += (xs[i] - mx) * (ys[i] - my)
		den += (xs[i] - mx) * (xs[i] - mx)
	}
	if den == 0 {
		return 0, errors.New("wsbench: procstat: slope of points with equal x")
	}
	return num / den, nil
}

// ParseCPUTotals returns busy and total jiffies from the "cpu" line of
// /proc/stat (busy = total − idle − iowait).
func ParseCPUTotals(text []byte) (busy, total int64, err error) {
	line, _, _ := bytes.Cut(text, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, errors.New("wsbench: procstat: no cpu line in /proc/stat")
	}
	return cpuLine(f)
}

// cpuLine sums the jiffies of one /proc/stat cpu line's fields.
func cpuLine(f []string) (busy, total int64, err error) {
	var v [10]int64
	for i := 1; i < len(f) && i <= 10; i++ {
		v[i-1], err = strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("wsbench: procstat: /proc/stat: %w", err)
		}
	}
	// user nice system idle iowait irq softirq steal (guest is inside user)
	for i := 0; i < 8; i++ {
		total += v[i]
	}
	return total - v[3] - v[4], total, nil
}

// ParseCPUSet returns busy and total jiffies summed over the "cpuN" lines
// of /proc/stat for the CPUs in cpus: everything those CPUs did (every
// process, the kernel's softirq work included), not one process's share.
func ParseCPUSet(text []byte, cpus []int) (busy, total int64, err error) {
	want := map[string]bool{}
	for _, c := range cpus {
		want["cpu"+strconv.Itoa(c)] = true
	}
	found := 0
	for _, line := range strings.Split(string(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !want[f[0]] {
			continue
		}
		b, t, err := cpuLine(f)
		if err != nil {
			return 0, 0, err
		}
		busy, total, found = busy+b, total+t, found+1
	}
	if found != len(want) {
		return 0, 0, fmt.Errorf("wsbench: procstat: /proc/stat has %d of the %d CPUs %v", found, len(want), cpus)
	}
	return busy, total, nil
}

// CPUSetBusy reads ParseCPUSet from /proc/stat.
func CPUSetBusy(cpus []int) (busy, total int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("wsbench: procstat: %w", err)
	}
	return ParseCPUSet(b, cpus)
}

// ParseCPUList parses a CPU list as taskset -c takes it ("1", "0-2,5").
func ParseCPUList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("wsbench: procstat: CPU list %q: bad CPU %q", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("wsbench: procstat: CPU list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}

// BusyFraction is the share of the jiffies between two CPUSetBusy
// readings that were busy (0 when no time passed).
func BusyFraction(busy0, total0, busy1, total1 int64) float64 {
	if total1 <= total0 {
		return 0
	}
	return float64(busy1-busy0) / float64(total1-total0)
}

// MachineBusySeconds is the CPU time (all cores) the machine has spent busy.
func MachineBusySeconds() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("wsbench: procstat: %w", err)
	}
	busy, _, err := ParseCPUTotals(b)
	return float64(busy) / ClockTicks, err
}
