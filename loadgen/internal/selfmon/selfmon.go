// Package selfmon watches wsload's own process so that a run can say when
// wsload, not the server, limited the result: process CPU (getrusage),
// the CPU of each poller thread (/proc/self/task/TID/stat; pollers are
// locked to their threads), RSS (/proc/self/statm), Go heap
// (runtime/metrics), machine CPU (/proc/stat) and the lateness of a 10 ms
// timer (scheduler delay) — and judges from those samples whether wsload
// was saturated or the machine busy (Judge, verdict.go).
//
// Concurrency: Judge and AvailableCores are pure functions. Monitor.Start
// launches one probe goroutine that exits when the context given to Start
// is done. SetPollerThread may be called from any goroutine (atomics).
// Sample is called by one goroutine (the run's once-a-second reporter) and
// guards the probe histogram with mu.
package selfmon

import (
	"context"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"wspush/loadgen/result"
)

// clkTck is USER_HZ, 100 on Linux.
const clkTck = 100

// Monitor samples the process once per call to Sample.
type Monitor struct {
	tids []atomic.Int32 // poller thread ids, 0 until known

	mu    sync.Mutex   // guards sched
	sched *result.Hist // timer lateness, µs

	// owned by the Sample caller
	lastWall    time.Time
	lastCPU     float64
	lastThread  []float64
	lastMachine [2]uint64 // busy, total jiffies
	samples     []metrics.Sample
	pageSize    int64
}

// Sample is one second of self-observation.
type Sample struct {
	CPUCores    float64 // process CPU over the interval, in cores
	CPUTotal    float64 // process CPU seconds since start
	PollerBusy  float64 // busiest poller thread, fraction of a core
	RSS         int64
	Heap        int64
	MachineBusy float64 // fraction of all cores busy machine-wide
	SchedP99MS  float64 // p99 timer lateness since the previous sample
}

// New prepares a monitor for n poller threads.
func New(pollers int) *Monitor {
	m := &Monitor{
		tids:       make([]atomic.Int32, pollers),
		sched:      result.NewHist(),
		lastThread: make([]float64, pollers),
		samples:    []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}},
		pageSize:   int64(os.Getpagesize()),
	}
	m.lastWall = time.Now()
	m.lastCPU = processCPU()
	m.lastMachine = machineJiffies()
	return m
}

// SetPollerThread records the OS thread of poller i (call it on that
// poller's goroutine; cheap after the first time).
func (m *Monitor) SetPollerThread(i int) {
	if i < len(m.tids) && m.tids[i].Load() == 0 {
		m.tids[i].Store(int32(syscall.Gettid()))
	}
}

// Start runs the timer-lateness probe until ctx is done.
func (m *Monitor) Start(ctx context.Context) {
	go func() {
		const period = 10 * time.Millisecond
		t := time.NewTimer(period)
		defer t.Stop()
		for {
			want := time.Now().Add(period)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			late := time.Since(want)
			m.mu.Lock()
			m.sched.Record(late.Microseconds())
			m.mu.Unlock()
			t.Reset(period)
		}
	}()
}

// Sample measures the interval since the previous Sample.
func (m *Monitor) Sample() Sample {
	now := time.Now()
	dt := now.Sub(m.lastWall).Seconds()
	if dt <= 0 {
		dt = 1e-9
	}
	var s Sample
	cpu := processCPU()
	s.CPUTotal = cpu
	s.CPUCores = (cpu - m.lastCPU) / dt
	m.lastCPU = cpu
	for i := range m.tids {
		tid := m.tids[i].Load()
		if tid == 0 {
			continue
		}
		t := threadCPU(int(tid))
		if m.lastThread[i] > 0 {
			s.PollerBusy = max(s.PollerBusy, (t-m.lastThread[i])/dt)
		}
		m.lastThread[i] = t
	}
	s.RSS = m.rss()
	metrics.Read(m.samples)
	if m.samples[0].Value.Kind() == metrics.KindUint64 {
		s.Heap = int64(m.samples[0].Value.Uint64())
	}
	mj := machineJiffies()
	if d := mj[1] - m.lastMachine[1]; d > 0 && mj[1] >= m.lastMachine[1] {
		s.MachineBusy = float64(mj[0]-m.lastMachine[0]) / float64(d)
	}
	m.lastMachine = mj
	m.mu.Lock()
	s.SchedP99MS = float64(m.sched.Quantile(99)) / 1000
	m.sched.Reset()
	m.mu.Unlock()
	m.lastWall = now
	return s
}

func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// threadCPU is utime+stime of one thread of this process, in seconds.
func threadCPU(tid int) float64 {
	b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/stat")
	if err != nil {
		return 0
	}
	// fields after the ")" of the command name: state is field 3; utime
	// and stime are fields 14 and 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / clkTck
}

func (m *Monitor) rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * m.pageSize
}

// machineJiffies returns (busy, total) from the "cpu" line of /proc/stat.
func machineJiffies() [2]uint64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return [2]uint64{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return [2]uint64{}
	}
	var total, idle uint64
	for i, x := range f[1:] {
		v, _ := strconv.ParseUint(x, 10, 64)
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return [2]uint64{total - idle, total}
}
