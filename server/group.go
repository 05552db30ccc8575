package main

import (
	"context"
	"errors"
	"fmt"
)

// group runs the server's components through the lifecycle they all share:
// a constructor (or Listen, Start) acquires sockets and connections and
// returns an error; Run(ctx) runs until ctx is done, releases everything and
// returns. Run with a context that is already done only releases.
//
// Like errgroup, a group runs each Run in its own goroutine and reports the
// first one that returns an error on its own (failed). Unlike errgroup it
// stops its members one at a time, in the reverse of the order they were
// added, waiting for each: shutdown order matters (the gateway stops
// before the hub, the cluster connection closes before the admin listener).
//
// Concurrency: add and start are called by one goroutine, before stop;
// stop is called once.
type group struct {
	members []*member
	started bool
	failed  chan memberError // the first member that failed on its own
}

type member struct {
	name   string
	run    func(context.Context) error
	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned; err is set then
	err    error
}

// memberError is a member's error with the member's name.
type memberError struct {
	name string
	err  error
}

func (e memberError) Error() string { return fmt.Sprintf("%s: %v", e.name, e.err) }
func (e memberError) Unwrap() error { return e.err }

func newGroup() *group { return &group{failed: make(chan memberError, 1)} }

// add registers a component whose resources are acquired: from now on stop
// releases them, whether or not start ran.
func (g *group) add(name string, run func(context.Context) error) {
	g.members = append(g.members, &member{name: name, run: run})
}

// start runs every member's Run in a goroutine of its own.
func (g *group) start() {
	g.started = true
	for _, m := range g.members {
		ctx, cancel := context.WithCancel(context.Background())
		m.cancel, m.done = cancel, make(chan struct{})
		go func() {
			defer close(m.done)
			m.err = m.run(ctx)
			if m.err != nil && ctx.Err() == nil {
				select {
				case g.failed <- memberError{m.name, m.err}:
				default:
				}
			}
		}()
	}
}

// stop stops the members in the reverse of the order they were added, each
// once the one added after it has returned, and returns their errors.
func (g *group) stop() error {
	var errs []error
	for i := len(g.members) - 1; i >= 0; i-- {
		m := g.members[i]
		if g.started {
			m.cancel()
			<-m.done
		} else {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			m.err = m.run(ctx)
		}
		if m.err != nil {
			errs = append(errs, memberError{m.name, m.err})
		}
	}
	return errors.Join(errs...)
}
