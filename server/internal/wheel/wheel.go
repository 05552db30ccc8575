// Package wheel is a single-level timing wheel for entries that all share
// one period, the structure that drives wspush's periodic pushes and
// keepalive without a Go timer or goroutine per connection.
//
// The period is cut into S slots. An entry keeps its slot for life, so
// adding is an append to the least loaded of two candidate slots and
// removing is a swap with the slot's last entry: both O(1), no rounds, no
// cascade, no heap. Slots are assigned for balance, not by the time an entry
// arrives, so entries that all arrive at once (a reconnect storm) are still
// visited evenly over the period.
//
// Slot k (counting from the wheel's start, k = 0, 1, 2, …) is due at
// start + k·period/S. Advance visits every slot whose due time has passed,
// in order, each with its own due time: a caller that fell behind catches up
// in order and can measure its lag; no slot is ever skipped.
//
// The wheel is a pure data structure: time is passed in, it never reads the
// clock, starts no goroutine and is not safe for concurrent use. Its owner
// (one shard goroutine) serializes every call.
package wheel

import (
	"fmt"
	"time"
)

// Pos is an entry's place in a wheel. Embed it in the entry; the wheel owns
// it. The zero Pos means "not in a wheel".
type Pos struct {
	slot int32 // slot index + 1; 0 = not in a wheel
	idx  int32 // index within the slot
}

// InWheel reports whether the entry is in a wheel.
func (p *Pos) InWheel() bool { return p.slot != 0 }

// Entry is what a wheel holds: a pointer type that exposes its Pos.
type Entry interface {
	comparable
	WheelPos() *Pos
}

// Wheel holds entries of type T. The zero Wheel is not usable; call New.
type Wheel[T Entry] struct {
	slots   [][]T
	period  time.Duration
	start   time.Time
	next    int64 // the absolute number of the next slot to visit
	cursor  int   // round-robin cursor for Add
	entries int
}

// New returns a wheel of the given period cut into n slots, whose slot 0 is
// due at start.
func New[T Entry](period time.Duration, n int, start time.Time) (*Wheel[T], error) {
	if period <= 0 {
		return nil, fmt.Errorf("wheel: period %v must be positive", period)
	}
	if n <= 0 || n > 1<<20 || time.Duration(n) > period {
		return nil, fmt.Errorf("wheel: %d slots do not fit a period of %v", n, period)
	}
	return &Wheel[T]{slots: make([][]T, n), period: period, start: start}, nil
}

// Period returns the wheel's period.
func (w *Wheel[T]) Period() time.Duration { return w.period }

// Slots returns the number of slots.
func (w *Wheel[T]) Slots() int { return len(w.slots) }

// Len returns the number of entries.
func (w *Wheel[T]) Len() int { return w.entries }

// SlotLen returns the number of entries in slot i.
func (w *Wheel[T]) SlotLen(i int) int { return len(w.slots[i]) }

// due returns the due time of absolute slot k.
func (w *Wheel[T]) due(k int64) time.Time {
	n := int64(len(w.slots))
	round, s := k/n, k%n
	return w.start.Add(time.Duration(round)*w.period + time.Duration(s)*w.period/time.Duration(n))
}

// NextDue returns the due time of the next slot Advance will visit.
func (w *Wheel[T]) NextDue() time.Time { return w.due(w.next) }

// Add puts e in the less loaded of two candidate slots: the round-robin
// cursor and the slot half a period away from it. Adding an entry that is
// already in a wheel is an error.
func (w *Wheel[T]) Add(e T) error {
	n := len(w.slots)
	a, b := w.cursor, (w.cursor+n/2)%n
	if len(w.slots[b]) < len(w.slots[a]) {
		a = b
	}
	if err := w.AddAt(e, a); err != nil {
		return err
	}
	w.cursor = (w.cursor + 1) % n
	return nil
}

// AddAt puts e in the given slot, one a Planner chose. Adding an entry that
// is already in a wheel, or to a slot out of range, is an error.
func (w *Wheel[T]) AddAt(e T, slot int) error {
	p := e.WheelPos()
	if p.slot != 0 {
		return fmt.Errorf("wheel: entry already in slot %d", p.slot-1)
	}
	if slot < 0 || slot >= len(w.slots) {
		return fmt.Errorf("wheel: slot %d out of range [0, %d)", slot, len(w.slots))
	}
	p.slot, p.idx = int32(slot+1), int32(len(w.slots[slot]))
	w.slots[slot] = append(w.slots[slot], e)
	w.entries++
	return nil
}

// Next returns the absolute number of the next slot Advance will visit:
// every visit of a lower number has been made.
func (w *Wheel[T]) Next() int64 { return w.next }

// Due returns the due time of absolute slot k (slot k mod Slots() in round
// k / Slots()). Like FirstAfter, Period and Slots it reads only what New
// set, so it may be called from any goroutine while the owner uses the
// wheel.
func (w *Wheel[T]) Due(k int64) time.Time { return w.due(k) }

// FirstAfter returns the absolute number of slot's first visit due after
// t. It may be called from any goroutine (see Due).
func (w *Wheel[T]) FirstAfter(slot int, t time.Time) int64 {
	n := int64(len(w.slots))
	k := int64(slot)
	if t.After(w.start) {
		k += int64(t.Sub(w.start)/w.period) * n
	}
	for !w.due(k).After(t) {
		k += n
	}
	return k
}

// Planner chooses entries' slots before they are added (AddAt), for an
// owner that must know an entry's slot, and so its due times, before the
// goroutine that owns the wheel adds it. It balances as Add does, by the
// entries it counts: Take chooses the less loaded of the round-robin
// cursor and the slot half a period away and counts an entry there;
// Release uncounts one. A Planner is not safe for concurrent use: its
// owner guards it with a lock.
type Planner struct {
	load   []int32
	cursor int
}

// NewPlanner returns a planner for a wheel of n slots.
func NewPlanner(n int) *Planner { return &Planner{load: make([]int32, n)} }

// Take chooses a slot for one more entry.
func (p *Planner) Take() int {
	n := len(p.load)
	a, b := p.cursor, (p.cursor+n/2)%n
	p.cursor = (p.cursor + 1) % n
	if p.load[b] < p.load[a] {
		a = b
	}
	p.load[a]++
	return a
}

// Release uncounts an entry of slot (one Take returned) that left.
func (p *Planner) Release(slot int) {
	if slot >= 0 && slot < len(p.load) && p.load[slot] > 0 {
		p.load[slot]--
	}
}

// Remove takes e out of the wheel; it reports whether e was there.
func (w *Wheel[T]) Remove(e T) bool {
	p := e.WheelPos()
	if p.slot == 0 || int(p.slot) > len(w.slots) {
		return false
	}
	s := w.slots[p.slot-1]
	i := int(p.idx)
	if i >= len(s) || s[i] != e {
		return false
	}
	last := len(s) - 1
	if i != last {
		s[i] = s[last]
		s[i].WheelPos().idx = int32(i)
	}
	var zero T
	s[last] = zero
	w.slots[p.slot-1] = s[:last]
	*p = Pos{}
	w.entries--
	return true
}

// Advance visits, in order, every slot due at or before now, calling visit
// with the slot's due time and its entries. visit must not call Add or
// Remove, and must not keep the slice. It returns the number of slots
// visited; more than one means the caller had fallen behind.
func (w *Wheel[T]) Advance(now time.Time, visit func(due time.Time, entries []T)) int {
	n := 0
	for {
		due := w.due(w.next)
		if due.After(now) {
			return n
		}
		visit(due, w.slots[w.next%int64(len(w.slots))])
		w.next++
		n++
	}
}

// Each calls fn for every entry; fn must not call Add or Remove.
func (w *Wheel[T]) Each(fn func(T)) {
	for _, s := range w.slots {
		for _, e := range s {
			fn(e)
		}
	}
}
