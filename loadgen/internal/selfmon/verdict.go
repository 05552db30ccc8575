package selfmon

import (
	"fmt"
	"time"

	"wspush/loadgen/result"
)

// Thresholds of the verdict (docs/loadgen.md, "Is wsload the bottleneck?").
// A condition must hold in at least MinBadSeconds one-second samples.
const (
	BusyLimit     = 0.90 // a poller thread's CPU, fraction of a core
	CPULimit      = 0.90 // process CPU, fraction of the cores available to it
	LowCPU        = 0.50 // below this fraction of its cores wsload is not what keeps the CPUs busy
	SchedLimitMS  = 20.0 // p99 lateness of the 10 ms timer
	RampLimit     = time.Second
	MachineLimit  = 0.95 // machine-wide CPU, fraction of all cores
	MinBadSeconds = 2
)

// AvailableCores is the CPU one wsload process can use: the smaller of
// GOMAXPROCS and the CPUs the process may run on, shared equally by the
// procs worker processes of the run (they run on the same machine).
// Callers pass runtime.GOMAXPROCS(0) and runtime.NumCPU().
func AvailableCores(gomaxprocs, ncpu, procs int) float64 {
	c := max(min(gomaxprocs, ncpu), 1)
	return float64(c) / float64(max(procs, 1))
}

// Judge tells from one process's per-second samples, the cores available
// to it (AvailableCores) and the worst lateness of its connect schedule
// whether wsload limited the run, and if its own timer ran late, whether
// that was wsload being saturated or the machine being busy:
//
//   - saturated (result.CauseSaturated): a poller thread over BusyLimit, or
//     process CPU over CPULimit of its cores, or the timer late while wsload
//     used at least LowCPU of its cores (the CPU it waited for was mostly
//     its own work), in MinBadSeconds seconds; or the connect schedule more
//     than RampLimit behind (its dial queue backed up);
//   - machine busy (result.CauseMachineBusy): not saturated, but the timer
//     was late in MinBadSeconds seconds while wsload used less than LowCPU
//     of its cores: its ready threads waited for CPUs that other processes
//     (the server, on a shared machine) held. wsload kept up with its own
//     work; the latency it measured includes that wait.
//
// Judge is a pure function of its arguments.
func Judge(samples []Sample, cores float64, rampBehind time.Duration) result.Bottleneck {
	var busy, cpu, lateSelf, lateOther, machine int
	var lateOtherCPU, lateOtherMS float64
	for _, s := range samples {
		sat := false
		if s.PollerBusy > BusyLimit {
			busy++
			sat = true
		}
		if s.CPUCores > CPULimit*cores {
			cpu++
			sat = true
		}
		if s.SchedP99MS > SchedLimitMS && !sat {
			if s.CPUCores >= LowCPU*cores {
				lateSelf++
			} else {
				lateOther++
				lateOtherCPU = max(lateOtherCPU, s.CPUCores)
				lateOtherMS = max(lateOtherMS, s.SchedP99MS)
			}
		}
		if s.MachineBusy > MachineLimit {
			machine++
		}
	}
	var b result.Bottleneck
	if busy >= MinBadSeconds {
		b.Reasons = append(b.Reasons, fmt.Sprintf("a poller thread was over %.0f%% busy in %d s", BusyLimit*100, busy))
	}
	if cpu >= MinBadSeconds {
		b.Reasons = append(b.Reasons, fmt.Sprintf("wsload used over %.0f%% of its %.2f cores in %d s", CPULimit*100, cores, cpu))
	}
	if lateSelf >= MinBadSeconds {
		b.Reasons = append(b.Reasons, fmt.Sprintf("wsload's own 10 ms timer ran over %.0f ms late (p99) in %d s while wsload used at least %.0f%% of its %.2f cores", SchedLimitMS, lateSelf, LowCPU*100, cores))
	}
	if rampBehind > RampLimit {
		b.Reasons = append(b.Reasons, fmt.Sprintf("the connect ramp fell %.1f s behind schedule (dialers too slow or too few)", rampBehind.Seconds()))
	}
	b.WsloadBound = len(b.Reasons) > 0
	switch {
	case b.WsloadBound:
		b.Cause = result.CauseSaturated
	case lateOther >= MinBadSeconds:
		b.Cause = result.CauseMachineBusy
	default:
		b.Cause = result.CauseNone
	}
	if lateOther >= MinBadSeconds {
		pre := ""
		if b.WsloadBound {
			pre = "note: "
		}
		b.Reasons = append(b.Reasons, fmt.Sprintf("%swsload's own 10 ms timer ran over %.0f ms late (p99, worst %.0f ms) in %d s while wsload used at most %.2f of its %.2f cores: it waited for CPUs that other processes held", pre, SchedLimitMS, lateOtherMS, lateOther, lateOtherCPU, cores))
	}
	if machine >= MinBadSeconds {
		b.Reasons = append(b.Reasons, fmt.Sprintf("note: the whole machine was over %.0f%% busy in %d s — server and wsload share the cores", MachineLimit*100, machine))
	}
	b.Summary = result.SummaryOf(b.Cause)
	return b
}
