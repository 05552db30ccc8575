package gateway

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// With every worker busy (a job that blocks, which handlers must not do)
// and the queue full, a job still runs at once: it goes to nbio's pool, as
// every job did before the executor.
func TestExecutorFullQueueSpills(t *testing.T) {
	e := newExecutor(2, nil)
	defer e.Stop()
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(2)
	for range 2 {
		e.Execute(func() { started.Done(); <-release })
	}
	started.Wait()
	var queued sync.WaitGroup
	for range executorQueue {
		queued.Add(1)
		e.Execute(queued.Done)
	}
	done := make(chan struct{})
	e.Execute(func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a job behind two busy workers and a full queue did not run")
	}
	close(release)
	queued.Wait() // the freed workers run the queue
}

// A panicking job is logged; its worker goes on.
func TestExecutorSurvivesAPanic(t *testing.T) {
	e := newExecutor(1, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer e.Stop()
	e.Execute(func() { panic("test") })
	done := make(chan struct{})
	e.Execute(func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("no job ran after a panic")
	}
}

// Stop lets the workers run what is queued.
func TestExecutorStopRunsTheQueue(t *testing.T) {
	e := newExecutor(1, nil)
	release := make(chan struct{})
	e.Execute(func() { <-release })
	var ran sync.WaitGroup
	for range 10 {
		ran.Add(1)
		e.Execute(ran.Done)
	}
	e.Stop()
	close(release)
	ran.Wait()
}
