package selfmon

import (
	"strings"
	"testing"
	"time"

	"wspush/loadgen/result"
)

// seconds repeats one sample n times.
func seconds(n int, s Sample) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestAvailableCores(t *testing.T) {
	for _, c := range []struct {
		gmp, ncpu, procs int
		want             float64
	}{{2, 2, 1, 2}, {2, 2, 0, 2}, {8, 2, 1, 2}, {1, 2, 1, 1}, {2, 2, 4, 0.5}, {0, 0, 1, 1}} {
		if got := AvailableCores(c.gmp, c.ncpu, c.procs); got != c.want {
			t.Errorf("AvailableCores(%d, %d, %d) = %v, want %v", c.gmp, c.ncpu, c.procs, got, c.want)
		}
	}
}

func TestJudge(t *testing.T) {
	for _, c := range []struct {
		name    string
		samples []Sample
		cores   float64
		ramp    time.Duration
		cause   string
		reason  string // a reason must contain this ("" = no reasons at all)
	}{
		{
			// issue 13: 0.2 cores, timer 60 ms late, machine 100 % busy —
			// the machine, not wsload
			name:    "busy machine, idle wsload",
			samples: seconds(5, Sample{CPUCores: 0.2, PollerBusy: 0.1, MachineBusy: 1, SchedP99MS: 60}),
			cores:   2, cause: result.CauseMachineBusy, reason: "at most 0.20 of its 2.00 cores",
		},
		{
			// late timer, low own CPU, /proc/stat not saturated (a CPU
			// quota, steal): still not wsload
			name:    "late timer, machine not busy",
			samples: seconds(3, Sample{CPUCores: 0.3, MachineBusy: 0.6, SchedP99MS: 45}),
			cores:   2, cause: result.CauseMachineBusy, reason: "waited for CPUs",
		},
		{
			name:    "poller thread saturated",
			samples: seconds(3, Sample{CPUCores: 0.95, PollerBusy: 0.97, MachineBusy: 0.7, SchedP99MS: 2}),
			cores:   2, cause: result.CauseSaturated, reason: "poller thread was over 90% busy in 3 s",
		},
		{
			name:    "process CPU near its cores",
			samples: seconds(2, Sample{CPUCores: 1.9, PollerBusy: 0.5, MachineBusy: 1, SchedP99MS: 80}),
			cores:   2, cause: result.CauseSaturated, reason: "over 90% of its 2.00 cores in 2 s",
		},
		{
			// the timer is late and wsload itself holds most of the CPU
			name:    "late timer, wsload's own load",
			samples: seconds(4, Sample{CPUCores: 1.4, PollerBusy: 0.6, MachineBusy: 1, SchedP99MS: 120}),
			cores:   2, cause: result.CauseSaturated, reason: "at least 50% of its 2.00 cores",
		},
		{
			// a worker of four on two cores has half a core
			name:    "worker over its share",
			samples: seconds(2, Sample{CPUCores: 0.47, PollerBusy: 0.4, MachineBusy: 1, SchedP99MS: 5}),
			cores:   0.5, cause: result.CauseSaturated, reason: "of its 0.50 cores",
		},
		{
			name:    "connect ramp behind",
			samples: seconds(3, Sample{CPUCores: 0.3, SchedP99MS: 1}),
			cores:   2, ramp: 3400 * time.Millisecond, cause: result.CauseSaturated, reason: "fell 3.4 s behind",
		},
		{
			name:    "one late second is not a verdict",
			samples: append(seconds(5, Sample{CPUCores: 0.2, SchedP99MS: 1}), Sample{CPUCores: 0.2, SchedP99MS: 300}),
			cores:   2, cause: result.CauseNone,
		},
		{
			name:    "quiet",
			samples: seconds(10, Sample{CPUCores: 0.2, PollerBusy: 0.12, MachineBusy: 0.3, SchedP99MS: 1.5}),
			cores:   2, cause: result.CauseNone,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := Judge(c.samples, c.cores, c.ramp)
			if b.Cause != c.cause || b.WsloadBound != (c.cause == result.CauseSaturated) {
				t.Fatalf("cause %q bound %v, want %q: %+v", b.Cause, b.WsloadBound, c.cause, b)
			}
			if b.Summary != result.SummaryOf(c.cause) {
				t.Errorf("summary %q", b.Summary)
			}
			if c.reason == "" {
				if len(b.Reasons) != 0 {
					t.Errorf("reasons %q", b.Reasons)
				}
				return
			}
			if !strings.Contains(strings.Join(b.Reasons, "\n"), c.reason) {
				t.Errorf("no reason contains %q: %q", c.reason, b.Reasons)
			}
		})
	}
}

// TestJudgeBusyMachineSummary: the verdict of the case says the
// machine was busy and does not blame wsload.
func TestJudgeBusyMachineSummary(t *testing.T) {
	b := Judge(seconds(5, Sample{CPUCores: 0.2, MachineBusy: 1, SchedP99MS: 60}), 2, 0)
	if strings.Contains(b.Summary, "wsload was the bottleneck") || !strings.HasPrefix(b.Summary, "the machine was busy") {
		t.Errorf("summary %q", b.Summary)
	}
	var machine bool
	for _, r := range b.Reasons {
		machine = machine || strings.Contains(r, "whole machine was over 95% busy in 5 s")
	}
	if !machine {
		t.Errorf("no machine note: %q", b.Reasons)
	}
}
