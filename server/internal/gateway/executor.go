package gateway

import (
	"cmp"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/lesismal/nbio/taskpool"
)

// executor runs nbio's handler jobs (nbhttp.Config.ServerExecutor: each
// connection's queue of handler calls, one job at a time per connection)
// on a few long-lived worker goroutines.
//
// Why. nbio's default executor, a taskpool, starts a new goroutine for a
// job whenever fewer than NumCPU×1024 run, and that goroutine exits when
// the pool's queue is empty: nearly every job gets a fresh goroutine.
// For the upgrade handler that is newproc, a 2 KiB stack grown by copying
// to the handler's depth, and the exit: 7–9 µs of CPU per handshake in a
// connect ramp (perf, docs/profiling.md), an eighth of the handshake.
// Here jobs go through a bounded queue to workers started with the
// gateway, which keep their grown stacks. A handoff to a parked worker
// alone is not enough: in a ramp the poller hands out jobs faster than the
// workers on the other core finish and park again. When the queue is full
// (the workers are stuck, which handlers must not be) a job goes to a
// taskpool with nbio's default sizes, as every job did before.
//
// Concurrency: Execute is called from any goroutine (pollers, workers);
// it never blocks while the queue has room, and beyond that behaves as
// nbio's own pool (which blocks the caller only when its 65,536-job queue
// is full). The channel and the pool are safe for concurrent use; the
// executor has no other mutable state.
type executor struct {
	work  chan func()
	spill *taskpool.TaskPool
	stop  chan struct{}
	once  sync.Once
	log   *slog.Logger
}

// executorQueue is the number of jobs that may wait for a worker.
const executorQueue = 1024

// newExecutor starts workers long-lived workers; log (nil: slog.Default())
// gets the panics.
func newExecutor(workers int, log *slog.Logger) *executor {
	e := &executor{
		work:  make(chan func(), executorQueue),
		spill: taskpool.New(runtime.NumCPU()*1024-1, 1024*64), // nbhttp's default pool
		stop:  make(chan struct{}), log: log,
	}
	for range max(workers, 1) {
		go e.worker()
	}
	return e
}

// Execute runs f on a worker.
func (e *executor) Execute(f func()) {
	select {
	case e.work <- f:
	default:
		e.spill.Go(f)
	}
}

func (e *executor) worker() {
	for {
		select {
		case f := <-e.work:
			e.run(f)
		case <-e.stop:
			for { // what is queued still runs
				select {
				case f := <-e.work:
					e.run(f)
				default:
					return
				}
			}
		}
	}
}

// run calls f; a panic is logged, as nbio's pool does, and the worker
// goes on (nbio recovers each handler's panic itself already).
func (e *executor) run(f func()) {
	defer func() {
		if err := recover(); err != nil {
			cmp.Or(e.log, slog.Default()).Error("gateway: handler panicked", "panic", err, "stack", string(debug.Stack()))
		}
	}()
	f()
}

// Stop ends the workers once the queue is empty, and nbio's pool. nbio
// stops giving jobs when its engine stops (Run stops the engine first).
func (e *executor) Stop() {
	e.once.Do(func() {
		close(e.stop)
		e.spill.Stop()
	})
}
