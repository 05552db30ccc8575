package wheel

import (
	"testing"
	"time"
)

type item struct {
	pos Pos
	id  int
}

func (it *item) WheelPos() *Pos { return &it.pos }

var t0 = time.Unix(1_700_000_000, 0)

func newWheel(t testing.TB, period time.Duration, n int) *Wheel[*item] {
	t.Helper()
	w, err := New[*item](period, n, t0)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestNewRejectsBadShapes(t *testing.T) {
	for _, c := range []struct {
		period time.Duration
		n      int
	}{{0, 1}, {-time.Second, 1}, {time.Second, 0}, {time.Nanosecond, 2}} {
		if _, err := New[*item](c.period, c.n, t0); err == nil {
			t.Errorf("New(%v, %d) = nil error", c.period, c.n)
		}
	}
}

func TestAdvanceVisitsEverySlotInOrderWithItsDueTime(t *testing.T) {
	w := newWheel(t, time.Second, 10)
	var dues []time.Time
	// 2.35 s later: slots 0..23 are due (slot 23 at 2.3 s).
	n := w.Advance(t0.Add(2350*time.Millisecond), func(due time.Time, _ []*item) { dues = append(dues, due) })
	if n != 24 || len(dues) != 24 {
		t.Fatalf("visited %d slots, want 24", n)
	}
	for k, d := range dues {
		if want := t0.Add(time.Duration(k) * 100 * time.Millisecond); !d.Equal(want) {
			t.Fatalf("slot %d due %v, want %v", k, d.Sub(t0), want.Sub(t0))
		}
	}
	if got := w.NextDue().Sub(t0); got != 2400*time.Millisecond {
		t.Fatalf("NextDue = %v, want 2.4s", got)
	}
	if n := w.Advance(t0.Add(2399*time.Millisecond), func(time.Time, []*item) {}); n != 0 {
		t.Fatalf("visited %d slots before the next was due", n)
	}
}

func TestEachEntryIsVisitedOncePerPeriod(t *testing.T) {
	w := newWheel(t, time.Second, 50)
	items := make([]*item, 1000)
	for i := range items {
		items[i] = &item{id: i}
		if err := w.Add(items[i]); err != nil {
			t.Fatal(err)
		}
	}
	w.Advance(t0, func(time.Time, []*item) {}) // slot 0 at t0
	visits := make([]int, len(items))
	last := make([]time.Time, len(items))
	for step := 1; step <= 300; step++ { // 15 periods in 50 ms steps
		w.Advance(t0.Add(time.Duration(step)*50*time.Millisecond), func(due time.Time, es []*item) {
			for _, e := range es {
				if !last[e.id].IsZero() && due.Sub(last[e.id]) != time.Second {
					t.Fatalf("item %d visited %v after its previous visit", e.id, due.Sub(last[e.id]))
				}
				last[e.id] = due
				visits[e.id]++
			}
		})
	}
	for i, v := range visits {
		if v < 14 || v > 15 {
			t.Fatalf("item %d visited %d times in 15 periods", i, v)
		}
	}
}

func TestAddSpreadsEntriesEvenly(t *testing.T) {
	w := newWheel(t, 5*time.Second, 100)
	items := make([]*item, 10_000)
	for i := range items {
		items[i] = &item{id: i}
		_ = w.Add(items[i])
	}
	// Remove a skewed subset (every item of the first 3000), then add more.
	for _, it := range items[:3000] {
		if !w.Remove(it) {
			t.Fatalf("item %d not removed", it.id)
		}
	}
	for i := 0; i < 3000; i++ {
		_ = w.Add(&item{id: 20_000 + i})
	}
	lo, hi := w.SlotLen(0), w.SlotLen(0)
	for i := 0; i < w.Slots(); i++ {
		lo, hi = min(lo, w.SlotLen(i)), max(hi, w.SlotLen(i))
	}
	if w.Len() != 10_000 {
		t.Fatalf("Len = %d, want 10000", w.Len())
	}
	if hi-lo > 10 {
		t.Fatalf("slot loads range %d..%d; want within 10 of each other", lo, hi)
	}
}

func TestRemoveKeepsPositionsConsistent(t *testing.T) {
	w := newWheel(t, time.Second, 3)
	items := make([]*item, 30)
	for i := range items {
		items[i] = &item{id: i}
		_ = w.Add(items[i])
	}
	if err := w.Add(items[0]); err == nil {
		t.Fatal("adding an entry twice succeeded")
	}
	for _, i := range []int{0, 29, 14, 15, 3} {
		if !w.Remove(items[i]) || items[i].pos.InWheel() {
			t.Fatalf("Remove(%d) failed or left pos %+v", i, items[i].pos)
		}
	}
	if w.Remove(items[3]) {
		t.Fatal("removing an entry twice succeeded")
	}
	if w.Len() != 25 {
		t.Fatalf("Len = %d, want 25", w.Len())
	}
	seen := map[int]bool{}
	for s := 0; s < w.Slots(); s++ {
		for j, e := range w.slots[s] {
			if int(e.pos.slot) != s+1 || int(e.pos.idx) != j {
				t.Fatalf("item %d at slot %d index %d has pos %+v", e.id, s, j, e.pos)
			}
			seen[e.id] = true
		}
	}
	for _, i := range []int{0, 29, 14, 15, 3} {
		if seen[i] {
			t.Fatalf("removed item %d still visited", i)
		}
	}
	if w.Remove(&item{}) {
		t.Fatal("removing a foreign entry succeeded")
	}
}

func TestCatchUpAfterStall(t *testing.T) {
	w := newWheel(t, time.Second, 10)
	it := &item{}
	_ = w.Add(it)
	var dues []time.Duration
	// Stalled for 3.05 periods: every missed visit is made, in order.
	w.Advance(t0.Add(3050*time.Millisecond), func(due time.Time, es []*item) {
		if len(es) > 0 {
			dues = append(dues, due.Sub(t0))
		}
	})
	want := []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second}
	if len(dues) != len(want) {
		t.Fatalf("visits at %v, want %v", dues, want)
	}
	for i := range want {
		if dues[i] != want[i] {
			t.Fatalf("visits at %v, want %v", dues, want)
		}
	}
}

func TestDueDoesNotDriftOverLongRuns(t *testing.T) {
	w := newWheel(t, 3*time.Second, 7) // 3s/7 is not a whole number of ns
	k := int64(7 * 1_000_000)          // a million periods later
	if got, want := w.due(k), t0.Add(1_000_000*3*time.Second); !got.Equal(want) {
		t.Fatalf("due after 1e6 periods = %v, want %v", got, want)
	}
}
