package main

import (
	"testing"
	"time"

	"wspush/server/wire"
)

// The welcome says when the first tick is due (first_due), and the first
// tick carries exactly that due time; with ticks off there is no first_due.
// Connections are still spread over the interval: the promises of clients
// that connect together differ.
func TestWelcomeSaysWhenTheFirstTickIsDue(t *testing.T) {
	for _, flags := range [][]string{
		{"-push-interval", "1s"},
		{"-push-interval", "1s", "-ping-interval", "300ms"}, // four wheel visits per tick
	} {
		s := startServer(t, flags...)
		promised := map[int64]bool{}
		for i := range 4 {
			before := time.Now()
			c := dial(t, s.ws)
			w := next(t, c, 2*time.Second)
			if w.Type != wire.TypeWelcome || w.FirstDue <= before.UnixNano() || w.FirstDue > time.Now().Add(time.Second).UnixNano() {
				t.Fatalf("%v client %d: welcome %+v, want first_due within one second", flags, i, w)
			}
			tick := nextOf(t, c, wire.TypeTick, 2*time.Second)
			if tick.Seq != 1 || tick.Due != w.FirstDue {
				t.Fatalf("%v client %d: first tick %+v, want seq 1 due at first_due %d", flags, i, tick, w.FirstDue)
			}
			promised[w.FirstDue] = true
		}
		if len(promised) < 2 {
			t.Errorf("%v: four clients were all promised the same first tick", flags)
		}
	}

	s := startServer(t, "-push-interval", "0")
	if w := next(t, dial(t, s.ws), 2*time.Second); w.Type != wire.TypeWelcome || w.FirstDue != 0 {
		t.Fatalf("ticks off: welcome %+v, want no first_due", w)
	}
}
