package scenario

import (
	"math"
	"strings"
	"testing"
	"time"

	"wspush/loadgen/result"
)

func TestLoadCheckJudge(t *testing.T) {
	for _, c := range []struct {
		name  string
		lc    LoadCheck
		bound bool
		why   string
	}{
		{"quiet", LoadCheck{Cores: 1, CPUMean: 0.3, HotSeconds: 0, BacklogStart: 1000, BacklogEnd: 2000, BytesPerSec: 2.2e6}, false, ""},
		{"one hot second is noise", LoadCheck{Cores: 1, CPUMean: 0.5, HotSeconds: 1, BacklogStart: -1, BacklogEnd: -1}, false, ""},
		{"two hot seconds", LoadCheck{Cores: 1, CPUMean: 0.6, HotSeconds: 2, BacklogStart: -1, BacklogEnd: -1}, true, "wsload CPU ≥ 90% of its 1 core(s) in 2 s"},
		{"mean at the limit", LoadCheck{Cores: 1, CPUMean: 0.9, BacklogStart: 0, BacklogEnd: 0}, true, "mean 90%"},
		{"half a core of two", LoadCheck{Cores: 2, CPUMean: 1.0, BacklogStart: 0, BacklogEnd: 0}, false, ""},
		// 2.2 MB/s: 100 ms of it is 220 KB; 64 KiB floor
		{"backlog grew 300 KB", LoadCheck{Cores: 1, CPUMean: 0.4, BacklogStart: 10_000, BacklogEnd: 310_000, BytesPerSec: 2.2e6}, true, "receive backlog grew by 292 KiB"},
		{"backlog grew 200 KB", LoadCheck{Cores: 1, CPUMean: 0.4, BacklogStart: 10_000, BacklogEnd: 210_000, BytesPerSec: 2.2e6}, false, ""},
		{"backlog shrank", LoadCheck{Cores: 1, CPUMean: 0.4, BacklogStart: 900_000, BacklogEnd: 0, BytesPerSec: 2.2e6}, false, ""},
		{"small rate: 64 KiB floor", LoadCheck{Cores: 1, CPUMean: 0.1, BacklogStart: 0, BacklogEnd: 70_000, BytesPerSec: 1000}, true, "limit 64 KiB"},
		{"backlog unknown", LoadCheck{Cores: 1, CPUMean: 0.1, BacklogStart: -1, BacklogEnd: 1 << 30}, false, ""},
		{"load core saturated, wsload's own figure low", LoadCheck{Cores: 1, CPUMean: 0.55, BacklogStart: -1, BacklogEnd: -1, LoadCoresBusy: 0.97}, true, "load core(s) were 97% busy"},
		{"load core at 85%", LoadCheck{Cores: 1, CPUMean: 0.55, BacklogStart: -1, BacklogEnd: -1, LoadCoresBusy: 0.85}, false, ""},
	} {
		lc := c.lc
		lc.Judge()
		if lc.Bound != c.bound || (c.why != "" && !strings.Contains(lc.Why, c.why)) || (!c.bound && lc.Why != "") {
			t.Errorf("%s: bound %v why %q, want %v %q", c.name, lc.Bound, lc.Why, c.bound, c.why)
		}
	}
}

func TestNewLoadCheckWindow(t *testing.T) {
	r := &result.Result{Self: result.Self{CoresAvailable: 1}}
	// a saturated ramp (t 1..4) before a calm window (t 5..9): only the window counts
	for i, c := range []float64{1, 1, 0.98, 0.95, 0.3, 0.35, 0.4, 0.3, 0.35, 0.99} {
		r.Series = append(r.Series, result.Second{T: i + 1, CPU: c})
	}
	lc := NewLoadCheck(r, 5, 9, 0, 0, 40000)
	if lc.Bound || lc.HotSeconds != 0 || lc.CPUPeak != 0.4 || lc.CPUMean < 0.339 || lc.CPUMean > 0.341 {
		t.Fatalf("calm window judged %+v", lc)
	}
	lc = NewLoadCheck(r, 1, 9, 0, 0, 40000)
	if !lc.Bound || lc.HotSeconds != 4 {
		t.Fatalf("window with the ramp judged %+v", lc)
	}
	// older files lack cores_available: one core
	r.Self.CoresAvailable = 0
	if lc = NewLoadCheck(r, 5, 9, -1, -1, 0); lc.Cores != 1 || lc.Bound {
		t.Fatalf("no cores_available: %+v", lc)
	}
}

func TestParseRxBacklog(t *testing.T) {
	text := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2328 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:2328 0200007F:8F1A 01 00000040:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0200007F:8F1A 0100007F:2328 01 00000000:00000100 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0200007F:8F1B 0100007F:2328 01 00000000:00000010 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
   4: 0200007F:8F1C 0100007F:2328 06 00000000:00001000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
   5: 0200007F:8F1D 0100007F:2329 01 00000000:00000007 00:00000000 00000000     0        0 5 1 0000000000000000 20 4 30 10 -1
`
	// port 9000 = 0x2328: the client ends (remote port 9000, established) hold 0x100 + 0x10;
	// the listener, the server end, a TIME_WAIT socket and port 9001 do not count
	if got := ParseRxBacklog([]byte(text), []int{9000}); got != 0x110 {
		t.Fatalf("backlog %d, want %d", got, 0x110)
	}
	if got := ParseRxBacklog([]byte(text), []int{9000, 9001}); got != 0x117 {
		t.Fatalf("backlog %d, want %d", got, 0x117)
	}
	if RxBacklog([]int{1}) < 0 {
		t.Skip("no /proc/net/tcp")
	}
}

func TestFixedSummarize(t *testing.T) {
	r := FixedResult{Trials: []TickTrial{
		{Pass: true, CPUPerPush: 10},
		{Pass: true, CPUPerPush: 4, Load: LoadCheck{Bound: true}}, // wsload's figure: left out
		{Pass: false, CPUPerPush: 30},                             // did not keep up: left out
		{Pass: true, CPUPerPush: 12},
	}}
	r.Summarize()
	if r.CPUPerPush != 11 || r.Clean != 2 || !r.LoadBound || r.KeptUp {
		t.Fatalf("summary %+v", r)
	}
	r = FixedResult{Trials: []TickTrial{{Pass: true, CPUPerPush: 4, Load: LoadCheck{Bound: true}}}}
	r.Summarize()
	if r.CPUPerPush != 0 || r.Clean != 0 || !r.LoadBound || !r.KeptUp {
		t.Fatalf("all load-bound: %+v", r)
	}
}

func TestCPUAtInterpolatesLoadCores(t *testing.T) {
	t0 := time.Unix(100, 0)
	pts := []cpuPoint{
		{at: t0, cpu: 1, loadBusy: 1000, loadAll: 2000},
		{at: t0.Add(100 * time.Millisecond), cpu: 1.1, loadBusy: 1010, loadAll: 2010},
	}
	p := cpuAt(pts, t0.Add(50*time.Millisecond))
	if math.Abs(p.cpu-1.05) > 1e-9 || math.Abs(p.loadBusy-1005) > 1e-9 || math.Abs(p.loadAll-2005) > 1e-9 {
		t.Fatalf("midpoint = %+v, want cpu 1.05, load 1005/2005", p)
	}
	if p := cpuAt(pts, t0.Add(time.Second)); p.loadBusy != 1010 {
		t.Fatalf("after the last point = %+v, want the last point", p)
	}
	if p := cpuAt(nil, t0); p.cpu != 0 || p.loadAll != 0 {
		t.Fatalf("no points = %+v, want zero", p)
	}
}
