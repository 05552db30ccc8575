// Package seq checks one stream of sequence numbers (a connection's ticks,
// or a subscriber's messages on a topic) for gaps, duplicates and reorders
// with 24 bytes of state and no allocation.
//
// Definitions (the counts wsload reports):
//   - missing (gaps): sequence numbers after the stream's base that have
//     not arrived. A number that arrives late, within 64 of the highest
//     seen, fills its hole again, so the running total is exact at any
//     moment, not only at the end.
//   - reorder: a number below the highest seen that had not arrived yet.
//   - duplicate: a number that had already arrived, or one at or below the
//     base, or one more than 64 below the highest (too old to tell apart;
//     counted as duplicate and documented as such).
//
// Concurrency: a Window is plain data owned by one goroutine at a time.
package seq

// Window is the state of one stream.
type Window struct {
	Max  uint64 // highest sequence number seen (or the base)
	Bits uint64 // bit i set: Max-1-i has arrived (or is at/below the base)
	Base uint64 // numbers <= Base precede the stream
}

// Verdict is what Observe concluded about one number.
type Verdict uint8

// Verdicts.
const (
	InOrder Verdict = iota
	Gap             // arrived after a jump; the skipped numbers are missing
	Reorder
	Duplicate
)

// Reset starts a stream whose first expected number is base+1.
func (w *Window) Reset(base uint64) {
	*w = Window{Max: base, Bits: ^uint64(0), Base: base}
}

// Observe records s and returns the verdict and the change in the number
// of missing sequence numbers (positive after a jump, -1 when a late
// number fills a hole).
func (w *Window) Observe(s uint64) (Verdict, int64) {
	switch {
	case s > w.Max:
		k := s - w.Max
		if k > 64 {
			w.Bits = 0
		} else {
			w.Bits = w.Bits<<k | 1<<(k-1)
		}
		w.Max = s
		if k == 1 {
			return InOrder, 0
		}
		return Gap, int64(k - 1)
	case s == w.Max || s <= w.Base:
		return Duplicate, 0
	}
	d := w.Max - 1 - s
	if d >= 64 || w.Bits&(1<<d) != 0 {
		return Duplicate, 0
	}
	w.Bits |= 1 << d
	return Reorder, -1
}

// Contiguous is the highest n such that every number up to n arrived (the
// resume point for a reconnect: since=Contiguous()).
func (w *Window) Contiguous() uint64 {
	if w.Bits == ^uint64(0) {
		return w.Max
	}
	// the highest unset bit is the oldest hole
	for i := 63; i >= 0; i-- {
		if w.Bits&(1<<uint(i)) == 0 {
			return w.Max - 1 - uint64(i) - 1
		}
	}
	return w.Max
}
