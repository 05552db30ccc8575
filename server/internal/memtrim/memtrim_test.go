package memtrim

import (
	"context"
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
