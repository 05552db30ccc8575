package result

import (
	"strings"
	"testing"
)

// Two workers' presence bookkeeping merges exactly, and PresenceCheck
// finds every kind of wrong count.
func TestPresenceMergeAndCheck(t *testing.T) {
	worker := func(last ...int64) *Result {
		var ts TopicStat
		for _, n := range last {
			ts.AddPresence(n)
		}
		return &Result{Schema: Schema, Scenario: "publish", TopicStats: []TopicStat{ts}, Ticks: 10, PresenceTicks: int64(len(last))}
	}
	check := func(name string, want string, parts ...*Result) {
		t.Helper()
		m, err := Merge(parts)
		if err != nil {
			t.Fatal(err)
		}
		bad, n := m.PresenceCheck(0)
		switch {
		case want == "" && (n != 0 || bad != nil):
			t.Errorf("%s: %d bad topics %q, want none", name, n, bad)
		case want != "" && (n != 1 || len(bad) != 1 || !strings.Contains(bad[0], want)):
			t.Errorf("%s: %d bad topics %q, want one with %q", name, n, bad, want)
		}
	}
	check("right", "", worker(5, 5), worker(5, 5, 5))
	check("one stale", "last counts 4..5, want 5", worker(5, 5), worker(5, 4, 5))
	check("one too high", "last counts 5..6, want 5", worker(6, 5), worker(5, 5, 5))
	check("one never told", "1 of 5 subscribers never got a count", worker(5, 0), worker(5, 5, 5))
	check("worker that saw nothing", "3 of 5 subscribers never got a count", worker(5, 5), worker(0, 0, 0))

	m, _ := Merge([]*Result{worker(5, 5), worker(5, 5, 5)})
	ts := m.TopicStats[0]
	if ts.PresSubs != 5 || ts.PresSeen != 5 || ts.PresMin != 5 || ts.PresMax != 5 || m.Ticks != 20 || m.PresenceTicks != 5 {
		t.Errorf("merged %+v ticks %d presence ticks %d", ts, m.Ticks, m.PresenceTicks)
	}
	// a run without -presence has nothing to check
	if bad, n := (&Result{TopicStats: []TopicStat{{Subs: 3}}}).PresenceCheck(0); n != 0 || bad != nil {
		t.Errorf("no presence: %d %q", n, bad)
	}
	// limit bounds the lines, not the count
	r := &Result{TopicStats: []TopicStat{{PresSubs: 2}, {PresSubs: 1}, {PresSubs: 3}}}
	if bad, n := r.PresenceCheck(2); n != 3 || len(bad) != 2 {
		t.Errorf("limit 2: %d topics, %d lines", n, len(bad))
	}
}
