package seq

import "testing"

func TestWindow(t *testing.T) {
	cases := []struct {
		name             string
		base             uint64
		in               []uint64
		gaps, dups, reos int64
		contiguous       uint64
	}{
		{"in order", 0, []uint64{1, 2, 3}, 0, 0, 0, 3},
		{"gap", 0, []uint64{1, 2, 5}, 2, 0, 0, 2},
		{"late fill", 0, []uint64{1, 3, 2}, 0, 0, 1, 3},
		{"dup", 0, []uint64{1, 2, 2, 1}, 0, 2, 0, 2},
		{"first missing", 0, []uint64{2, 3}, 1, 0, 0, 0},
		{"base", 10, []uint64{9, 11, 12}, 0, 1, 0, 12},
		{"big jump", 0, []uint64{1, 200}, 198, 0, 0, 1},
		{"too old", 0, []uint64{1, 200, 2}, 198, 1, 0, 1},
	}
	for _, c := range cases {
		var w Window
		w.Reset(c.base)
		var gaps, dups, reos int64
		for _, s := range c.in {
			v, d := w.Observe(s)
			gaps += d
			switch v {
			case Duplicate:
				dups++
			case Reorder:
				reos++
			}
		}
		if gaps != c.gaps || dups != c.dups || reos != c.reos {
			t.Errorf("%s: gaps %d dups %d reorders %d, want %d %d %d", c.name, gaps, dups, reos, c.gaps, c.dups, c.reos)
		}
		if c.name != "big jump" && c.name != "too old" && w.Contiguous() != c.contiguous {
			t.Errorf("%s: contiguous %d, want %d", c.name, w.Contiguous(), c.contiguous)
		}
	}
}
