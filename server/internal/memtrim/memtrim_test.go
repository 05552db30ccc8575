package memtrim

import (
	"context"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

func TestDue(t *testing.T) {
	c := Config{MinAlloc: 1600, Gap: time.Second}.withDefaults()
	for _, tc := range []struct {
		since, last uint64
		idle        time.Duration
		want        bool
	}{
		{1600, 0, time.Second, true},         // a burst that has ended
		{1600, 99, time.Second, true},        // a trickle after it
		{1600, 100, time.Second, false},      // still allocating
		{1599, 0, time.Second, false},        // too little to be worth it
		{1 << 30, 0, time.Second - 1, false}, // too soon after the last trim
	} {
		if got := Due(c, tc.since, tc.last, tc.idle); got != tc.want {
			t.Errorf("Due(since %d, last %d, idle %v) = %v, want %v", tc.since, tc.last, tc.idle, got, tc.want)
		}
	}
}

var sink [][]byte

// TestRunTrimsOnceAfterABurst: a burst of allocation is followed by one
// trim once it has ended, and a quiet heap is not trimmed again.
func TestRunTrimsOnceAfterABurst(t *testing.T) {
	var trims atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Config{Every: 20 * time.Millisecond, MinAlloc: 8 << 20, Gap: 50 * time.Millisecond, Trim: func() { trims.Add(1) }})
	}()
	defer func() { cancel(); <-done }()

	time.Sleep(100 * time.Millisecond)
	if n := trims.Load(); n != 0 {
		t.Fatalf("%d trims before any burst", n)
	}
	for range 16 { // 16 MiB at once
		sink = append(sink, make([]byte, 1<<20))
	}
	sink = nil
	deadline := time.Now().Add(5 * time.Second)
	for trims.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := trims.Load(); n != 1 {
		t.Fatalf("%d trims after a burst, want 1", n)
	}
	time.Sleep(300 * time.Millisecond) // many periods and gaps, nothing allocated
	if n := trims.Load(); n != 1 {
		t.Fatalf("%d trims in all, want 1: a quiet heap was trimmed again", n)
	}
}

// fakeRuntime is the GC percent and the allocation counter a controller
// sees, with a log of what it did.
type fakeRuntime struct {
	pct    int
	allocs uint64
	log    []string
}

func (f *fakeRuntime) config(c Config) Config {
	c.SetGCPercent = func(p int) int {
		old := f.pct
		f.pct = p
		f.log = append(f.log, "gc "+strconv.Itoa(p))
		return old
	}
	c.Trim = func() { f.log = append(f.log, "trim at gc "+strconv.Itoa(f.pct)) }
	return c.withDefaults()
}

// run polls k every c.Poll for d, allocating rate bytes per second.
func (f *fakeRuntime) run(k *controller, now *time.Time, d time.Duration, rate uint64) {
	for end := now.Add(d); now.Before(end); {
		*now = now.Add(k.c.Poll)
		f.allocs += rate * uint64(k.c.Poll) / uint64(time.Second)
		k.poll(*now, f.allocs)
	}
}

// TestBurstRaisesTheGCPercentUntilTheTrim: a connect ramp's allocation
// raises the GC percent to the burst percent; the program's percent is
// back before the trim that follows the burst.
func TestBurstRaisesTheGCPercentUntilTheTrim(t *testing.T) {
	f := &fakeRuntime{pct: 25}
	c := f.config(Config{})
	now := time.Unix(1000, 0)
	k := newController(c, now, 0, func() uint64 { return f.allocs })
	f.run(k, &now, 5*time.Second, 64<<10) // steady trickle: nothing
	if len(f.log) != 0 || f.pct != 25 {
		t.Fatalf("a trickle of 64 KiB/s: %v, GC percent %d; want nothing done", f.log, f.pct)
	}
	f.run(k, &now, 300*time.Millisecond, 50<<20) // a ramp: 50 MiB/s
	if f.pct != DefaultBurstGCPercent {
		t.Fatalf("GC percent %d during a burst, want %d (log %v)", f.pct, DefaultBurstGCPercent, f.log)
	}
	f.run(k, &now, 2*time.Second, 50<<20)
	f.run(k, &now, 3*time.Second, 0) // the ramp is over
	want := []string{"gc " + strconv.Itoa(DefaultBurstGCPercent), "gc 25", "trim at gc 25"}
	if !slices.Equal(f.log, want) || f.pct != 25 {
		t.Fatalf("log %v, GC percent %d; want %v and 25", f.log, f.pct, want)
	}
	f.log = nil
	f.run(k, &now, time.Second, 50<<20) // the next ramp raises it again
	if f.pct != DefaultBurstGCPercent {
		t.Fatalf("GC percent %d in the second burst, want %d (log %v)", f.pct, DefaultBurstGCPercent, f.log)
	}
}

// TestSteadyAllocationKeepsTheBurstPercentAtMostMaxBurst: allocation that
// does not stop is load, not a burst: the percent goes back after MaxBurst
// and is not raised again before a trim.
func TestSteadyAllocationKeepsTheBurstPercentAtMostMaxBurst(t *testing.T) {
	f := &fakeRuntime{pct: 25}
	c := f.config(Config{MaxBurst: 5 * time.Second})
	now := time.Unix(1000, 0)
	k := newController(c, now, 0, func() uint64 { return f.allocs })
	f.run(k, &now, 4*time.Second, 8<<20)
	if f.pct != DefaultBurstGCPercent {
		t.Fatalf("GC percent %d 4 s into the load, want %d", f.pct, DefaultBurstGCPercent)
	}
	f.run(k, &now, 60*time.Second, 8<<20)
	if want := []string{"gc " + strconv.Itoa(DefaultBurstGCPercent), "gc 25"}; !slices.Equal(f.log, want) || f.pct != 25 {
		t.Fatalf("a minute of steady allocation: log %v, GC percent %d; want %v and 25", f.log, f.pct, want)
	}
}

// TestBurstLeavesAHigherOrOffGCPercent: GOGC=off or a percent above the
// burst percent is not lowered.
func TestBurstLeavesAHigherOrOffGCPercent(t *testing.T) {
	for _, pct := range []int{-1, DefaultBurstGCPercent, 400} {
		f := &fakeRuntime{pct: pct}
		c := f.config(Config{})
		now := time.Unix(1000, 0)
		k := newController(c, now, 0, func() uint64 { return f.allocs })
		f.run(k, &now, 3*time.Second, 50<<20)
		if f.pct != pct {
			t.Fatalf("GC percent %d: %d during a burst (log %v), want it left alone", pct, f.pct, f.log)
		}
	}
	f := &fakeRuntime{pct: 25}
	c := f.config(Config{BurstGCPercent: -1})
	now := time.Unix(1000, 0)
	k := newController(c, now, 0, func() uint64 { return f.allocs })
	f.run(k, &now, 3*time.Second, 50<<20)
	if f.pct != 25 {
		t.Fatalf("BurstGCPercent -1: GC percent %d during a burst (log %v), want 25", f.pct, f.log)
	}
}
