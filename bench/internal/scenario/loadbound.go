package scenario

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"wspush/loadgen/result"
)

// Limits of LoadCheck.Judge: when wsload, not the server, set a trial's
// figures. A ratio is never computed from a trial that is load-bound.
const (
	// LoadCPULimit: wsload's CPU as a fraction of the cores it may use
	// (result self.cores_available; 1 when absent). At or over it in
	// LoadHotSeconds seconds of the window, or on average, wsload had no
	// CPU left to spare.
	LoadCPULimit   = 0.90
	LoadHotSeconds = 2
	// BacklogLimitS: wsload's receive backlog (bytes delivered to its
	// sockets but not read yet) may grow over the window by at most this
	// many seconds of the traffic (and at least BacklogMinBytes): more
	// means wsload read slower than the server wrote.
	BacklogLimitS   = 0.1
	BacklogMinBytes = 64 << 10
	// tickFrameBytes is the size of a tick frame on the wire (header + JSON
	// with a 19-digit due), to turn messages/s into bytes/s.
	tickFrameBytes = 56
)

// LoadCheck is what wsbench knows of wsload over a trial's steady window,
// and its verdict: was wsload the limit (saturated)? Then the trial's
// server figures are "load-bound, not the server's figure".
type LoadCheck struct {
	CPUMean    float64 `json:"wsload_cpu_mean_cores"` // over the window, from wsload's per-second series
	CPUPeak    float64 `json:"wsload_cpu_peak_cores"`
	Cores      float64 `json:"wsload_cores_available"`
	HotSeconds int     `json:"wsload_hot_seconds"` // seconds with CPU ≥ LoadCPULimit × Cores
	// BacklogStart and BacklogEnd are the unread bytes in wsload's sockets
	// (rx_queue in /proc/net/tcp) at the window's start and end; -1 when
	// not sampled.
	BacklogStart int64   `json:"wsload_backlog_start_bytes"`
	BacklogEnd   int64   `json:"wsload_backlog_end_bytes"`
	BytesPerSec  float64 `json:"delivered_bytes_per_s"`
	// LoadCoresBusy is the share of the load CPUs' time (/proc/stat, the
	// CPUs wsload is pinned to) that was busy over the window: wsload, the
	// kernel's softirq work charged to those CPUs and anything else that
	// ran there. 0 when not sampled (files before it was).
	LoadCoresBusy float64 `json:"load_cores_busy,omitempty"`
	Bound         bool    `json:"load_bound"`
	Why           string  `json:"load_bound_why,omitempty"`
}

// NewLoadCheck gathers the window [from, to] of wsload's series (seconds,
// inclusive) and the two backlog samples, and judges them.
func NewLoadCheck(r *result.Result, from, to int, backlogStart, backlogEnd int64, msgsPerSec float64) LoadCheck {
	lc := LoadCheck{Cores: r.Self.CoresAvailable, BacklogStart: backlogStart, BacklogEnd: backlogEnd,
		BytesPerSec: msgsPerSec * tickFrameBytes}
	if lc.Cores <= 0 {
		lc.Cores = 1
	}
	var sum float64
	n := 0
	for _, s := range r.Series {
		if s.T < from || s.T > to {
			continue
		}
		n++
		sum += s.CPU
		lc.CPUPeak = max(lc.CPUPeak, s.CPU)
		if s.CPU >= LoadCPULimit*lc.Cores {
			lc.HotSeconds++
		}
	}
	if n > 0 {
		lc.CPUMean = sum / float64(n)
	}
	lc.Judge()
	return lc
}

// Judge sets Bound and Why from the figures; a pure function of them.
// wsload is the limit when, over the window:
//   - its CPU was ≥ LoadCPULimit of its cores in LoadHotSeconds seconds or
//     on average, or
//   - its receive backlog grew by more than BacklogLimitS seconds of the
//     delivered traffic (and more than BacklogMinBytes), or
//   - the load CPUs were busy ≥ LoadCPULimit of the time: wsload's own
//     figure misses the kernel work that runs on its core in softirq and
//     anything else scheduled there, and a saturated load core is the
//     limit whoever used it.
func (lc *LoadCheck) Judge() {
	var why []string
	if lc.HotSeconds >= LoadHotSeconds || lc.CPUMean >= LoadCPULimit*lc.Cores {
		why = append(why, fmt.Sprintf("wsload CPU ≥ %.0f%% of its %.2g core(s) in %d s (mean %.0f%%)",
			LoadCPULimit*100, lc.Cores, lc.HotSeconds, 100*lc.CPUMean/lc.Cores))
	}
	if lc.LoadCoresBusy >= LoadCPULimit {
		why = append(why, LoadCoresWhy(lc.LoadCoresBusy))
	}
	if lc.BacklogStart >= 0 && lc.BacklogEnd >= 0 {
		grew := lc.BacklogEnd - lc.BacklogStart
		if limit := max(float64(BacklogMinBytes), BacklogLimitS*lc.BytesPerSec); float64(grew) > limit {
			why = append(why, fmt.Sprintf("wsload's receive backlog grew by %d KiB (limit %.0f KiB)", grew>>10, limit/1024))
		}
	}
	lc.Bound = len(why) > 0
	lc.Why = strings.Join(why, "; ")
}

// LoadCoresWhy says that the load CPUs were saturated.
func LoadCoresWhy(busy float64) string {
	return fmt.Sprintf("the load core(s) were %.0f%% busy (/proc/stat: wsload, softirq and all else; limit %.0f%%)", 100*busy, LoadCPULimit*100)
}

// RxBacklog sums the unread bytes (rx_queue) of the established IPv4 TCP
// sockets whose remote port is one of ports: on loopback, the client ends
// of the connections to those server ports — wsload's receive backlog.
// It returns -1 when /proc/net/tcp cannot be read.
func RxBacklog(ports []int) int64 {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return -1
	}
	return ParseRxBacklog(b, ports)
}

// ParseRxBacklog is RxBacklog on the text of /proc/net/tcp.
func ParseRxBacklog(text []byte, ports []int) int64 {
	want := map[uint64]bool{}
	for _, p := range ports {
		want[uint64(p)] = true
	}
	var sum int64
	for i, line := range bytes.Split(text, []byte{'\n'}) {
		f := strings.Fields(string(line))
		// sl local rem st tx_queue:rx_queue ...
		if i == 0 || len(f) < 5 || f[3] != "01" {
			continue
		}
		_, rport, ok := strings.Cut(f[2], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(rport, 16, 16)
		if err != nil || !want[p] {
			continue
		}
		_, rx, ok := strings.Cut(f[4], ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(rx, 16, 64); err == nil {
			sum += n
		}
	}
	return sum
}
