package main

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder is a group member that notes when it starts and stops.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) note(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) member(name string) func(context.Context) error {
	return func(ctx context.Context) error {
		if ctx.Err() == nil {
			r.note("run " + name)
		}
		<-ctx.Done()
		r.note("stop " + name)
		return nil
	}
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func TestGroupStopsInReverseOrder(t *testing.T) {
	var r recorder
	g := newGroup()
	for _, name := range []string{"admin", "cluster", "hub", "gateway"} {
		g.add(name, r.member(name))
	}
	g.start()
	eventually(t, 2*time.Second, "every member running", func() bool { return len(r.list()) == 4 })
	if err := g.stop(); err != nil {
		t.Fatal(err)
	}
	got := r.list()[4:]
	if want := []string{"stop gateway", "stop hub", "stop cluster", "stop admin"}; !slices.Equal(got, want) {
		t.Fatalf("stopped %v, want %v", got, want)
	}
}

func TestGroupStopReleasesMembersNeverStarted(t *testing.T) {
	var r recorder
	g := newGroup()
	g.add("admin", r.member("admin"))
	g.add("cluster", r.member("cluster"))
	if err := g.stop(); err != nil {
		t.Fatal(err)
	}
	if got, want := r.list(), []string{"stop cluster", "stop admin"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestGroupReportsAMemberThatFails(t *testing.T) {
	var r recorder
	boom := errors.New("boom")
	g := newGroup()
	g.add("admin listener", func(context.Context) error { return boom })
	g.add("hub", r.member("hub"))
	g.start()
	select {
	case f := <-g.failed:
		if f.name != "admin listener" || !errors.Is(f.err, boom) {
			t.Fatalf("failed: %v", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no failure reported")
	}
	if err := g.stop(); !errors.Is(err, boom) {
		t.Fatalf("stop: %v, want the member's error", err)
	}
	if got := r.list(); !slices.Contains(got, "stop hub") {
		t.Fatalf("hub not stopped: %v", got)
	}
}
