package presence

import (
	"testing"
	"time"

	"wspush/server/internal/bus"
)

type subscriber string

func (s subscriber) ID() string { return string(s) }

// A client that subscribes and unsubscribes in a loop within the grace
// period keeps one grace entry, not one per leave, and its member still
// leaves (once) when the grace after its last leave runs out.
func TestGraceListHoldsOneEntryPerMember(t *testing.T) {
	var leaves []string
	tr, err := New(Config{Members: "room.*", Grace: time.Minute}, nil, nil,
		func(topic, user, client string, joined bool) {
			if !joined {
				leaves = append(leaves, topic+"/"+user)
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	tr.now = func() time.Time { return now }
	sub := &bus.Subscription{Subscriber: subscriber("c1"), Topic: "room.a", User: "ann"}
	for range 10_000 {
		if err := tr.Join("room.a", sub); err != nil {
			t.Fatal(err)
		}
		tr.Leave("room.a", sub)
		now = now.Add(time.Millisecond)
	}
	if n := len(tr.grace); n != 1 {
		t.Fatalf("grace list holds %d entries after 10,000 leaves of one member, want 1", n)
	}
	lastLeave := now.Add(-time.Millisecond)
	// The first entry comes due a minute after the first leave: the member
	// left again later, so it is queued again, not ended.
	out := tr.expireGrace(time.Unix(1_000_000, 0).Add(time.Minute).UnixNano(), nil)
	if len(out) != 0 || len(tr.grace) != 1 {
		t.Fatalf("at the first leave's grace end: %d leaves, %d entries; want 0 and 1", len(out), len(tr.grace))
	}
	out = tr.expireGrace(lastLeave.Add(time.Minute).UnixNano(), nil)
	if len(out) != 1 || out[0].user != "ann" || len(tr.grace) != 0 {
		t.Fatalf("at the last leave's grace end: leaves %+v, %d entries; want ann's leave and none", out, len(tr.grace))
	}
	if len(tr.sets) != 0 {
		t.Fatalf("member sets left: %v", tr.sets)
	}
}

// Over MaxGraceEntries members in grace, a member leaves at once.
func TestGraceListIsCapped(t *testing.T) {
	var leaves int
	tr, err := New(Config{Members: "room.*", Grace: time.Minute}, nil, nil,
		func(_, _, _ string, joined bool) {
			if !joined {
				leaves++
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	tr.grace = make([]graceEntry, MaxGraceEntries) // as if full
	sub := &bus.Subscription{Subscriber: subscriber("c1"), Topic: "room.a", User: "ann"}
	if err := tr.Join("room.a", sub); err != nil {
		t.Fatal(err)
	}
	tr.Leave("room.a", sub)
	if len(tr.grace) != MaxGraceEntries || leaves != 1 || len(tr.sets) != 0 {
		t.Fatalf("over the cap: %d entries, %d leaves, %d member sets; want the cap, 1 leave at once, none", len(tr.grace), leaves, len(tr.sets))
	}
}
