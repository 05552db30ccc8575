package scenario

import (
	"math"
	"time"
)

// Search finds the shortest push interval (highest push rate) a target
// sustains, by geometric bisection between Hi (assumed to pass) and Lo
// (assumed to fail) in Steps trials. If no trial passed, one last trial
// checks Hi itself. It is pure bookkeeping: the caller runs the trials.
//
// Concurrency: not safe for concurrent use; one goroutine drives a Search.
type Search struct {
	Hi, Lo time.Duration
	Steps  int
	Trials []Probe

	pass, fail   time.Duration // current bracket
	passSeen     bool          // some trial passed
	hiChecked    bool
	failObserved bool
}

// Probe is one trial's interval and verdict.
type Probe struct {
	Interval time.Duration `json:"interval"`
	Pass     bool          `json:"pass"`
}

// NewSearch brackets [lo, hi] with steps bisection trials.
func NewSearch(hi, lo time.Duration, steps int) *Search {
	return &Search{Hi: hi, Lo: lo, Steps: steps, pass: hi, fail: lo}
}

// Next is the interval to try next, or false when the search is over.
func (s *Search) Next() (time.Duration, bool) {
	if len(s.Trials) < s.Steps {
		mid := time.Duration(math.Sqrt(float64(s.pass) * float64(s.fail)))
		return mid.Round(time.Millisecond), true
	}
	if !s.passSeen && !s.hiChecked {
		return s.Hi, true
	}
	return 0, false
}

// Record stores the verdict of the trial at d.
func (s *Search) Record(d time.Duration, pass bool) {
	s.Trials = append(s.Trials, Probe{Interval: d, Pass: pass})
	if d == s.Hi && len(s.Trials) > s.Steps {
		s.hiChecked = true
	}
	if pass {
		s.passSeen = true
		if d < s.pass {
			s.pass = d
		}
	} else {
		s.failObserved = true
		if d > s.fail {
			s.fail = d
		}
	}
}

// Best is the shortest interval that passed, or false if none did.
// Censored is true when nothing failed (the target may do better than Lo
// bounds allow to find out).
func (s *Search) Best() (best time.Duration, ok, censored bool) {
	for _, t := range s.Trials {
		if t.Pass && (!ok || t.Interval < best) {
			best, ok = t.Interval, true
		}
	}
	return best, ok, !s.failObserved
}
