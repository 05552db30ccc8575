package scenario

// Connection retries (-retries, -retry-backoff): a slot whose connect
// failed is dialled again later, like a real client reconnecting, at most
// cfg.Retries times in a row.
//
// Ownership: a slot is held by one goroutine at a time. The ramp emits it
// once and a dialer dials it; when the connect fails and the slot has
// attempts left, that dialer increments attempts[slot] and hands
// {due, slot} to the retrier goroutine (retryIn), which keeps them in a
// min-heap by due time and offers each due slot to any idle dialer
// (retryOut). attempts[slot] is touched only by the slot's current holder,
// and every hand-over is a channel operation. A successful connect resets
// the counter (so a churned slot whose redial fails gets retries of its
// own); the churn path hands the slot over as before (OnClose → redial).
//
// Churn's reconnects use the same machinery: a churn slot whose connection
// ended unplanned is handed from OnClose to the retrier (reconnectLater,
// after one backoff), and a failed reconnect — planned or not — is retried
// up to max(cfg.Retries, minReconnectTries) times in a row. The item says
// which (reconnect, retry); only dials after a failed connect count in
// retries.
//
// The retrier never blocks on a send: it offers a due slot in a select
// that also accepts new entries and ctx.Done(), so a dialer can always
// hand a slot over, and it returns when its context ends (-duration; in
// churn after the grace), dropping what is still waiting: no goroutine or
// timer outlives Execute. Memory: one byte per slot (nil with -retries 0
// outside churn), and a heap of at most one 16-byte entry per slot.

import (
	"container/heap"
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"wspush/loadgen/internal/engine"
)

const (
	maxRetries = 255              // attempts are counted in a uint8
	maxBackoff = 30 * time.Second // cap of backoff × 2^(attempt-1)
	// minReconnectTries: in churn, a slot that had a connection keeps
	// reconnecting after a failed reconnect at least this many times in a
	// row, -retries or not (a churning client comes back; one that gave up
	// would count everything after as lost).
	minReconnectTries = 5
)

// retryable says whether a failed connect of this class is worth another
// try. Out of file descriptors or source ports, a retry would fail the
// same way and only burn CPU; everything else (refused, timeout,
// rejected, bad_handshake, reset, other) can clear up.
func retryable(class string) bool {
	return class != engine.ClassFDLimit && class != engine.ClassPortExhaustion
}

// retryDelay is the wait before retry number attempt (1, 2, …): the
// server's Retry-After when it gave one, stretched by a random [1, 1.5)
// (never earlier than asked); otherwise backoff × 2^(attempt-1), capped at
// maxBackoff, times a random [0.5, 1.5). u is uniform in [0, 1). The
// jitter keeps failed connects that were refused together from coming
// back together.
func retryDelay(attempt int, backoff, retryAfter time.Duration, u float64) time.Duration {
	if retryAfter > 0 {
		return time.Duration(float64(retryAfter) * (1 + u/2))
	}
	d := backoff
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return time.Duration(float64(d) * (0.5 + u))
}

type retryItem struct {
	due       int64 // Unix ns
	slot      uint32
	reconnect bool // the slot had a connection: it resumes (churn)
	retry     bool // after a failed connect: counted in retries
}

// retryHeap is a min-heap of retryItems by due time (container/heap).
type retryHeap []retryItem

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h retryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)        { *h = append(*h, x.(retryItem)) }
func (h *retryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// retryLater runs where the connect of slot failed with err (of class
// class: the dialer, or the dial's completion on the callback dial): it
// schedules the next attempt, if any is left, without blocking. A
// reconnect gets at least minReconnectTries.
func (r *Run) retryLater(ctx context.Context, slot uint32, err error, class string, reconnect bool) {
	if r.attempts == nil || !retryable(class) || ctx.Err() != nil {
		return
	}
	limit := r.cfg.Retries
	if reconnect {
		limit = max(limit, minReconnectTries)
	}
	n := r.attempts[slot]
	if int(n) >= limit {
		return // given up: the slot stays empty
	}
	n++
	r.attempts[slot] = n
	var ra time.Duration
	var rej *engine.RejectedError
	if errors.As(err, &rej) {
		ra = rej.RetryAfter
	}
	d := retryDelay(int(n), r.cfg.RetryBackoff, ra, rand.Float64())
	select {
	case r.retryIn <- retryItem{due: time.Now().Add(d).UnixNano(), slot: slot, reconnect: reconnect, retry: true}:
	default:
		// It runs where the dial completed (a poller, on the callback dial):
		// never blocks. The queue has room for every dial in flight and
		// the retrier empties it, so this is rare; the slot stays empty.
		r.connMu.Lock()
		r.dialErrs["retry_queue_full"]++
		r.errSec++
		r.connMu.Unlock()
	}
}

// reconnectLater runs in OnClose when a churn slot's connection ended
// without wsload closing it (the server closed it, or the socket failed):
// the slot reconnects, like a real client, after -retry-backoff × a random
// [0.5, 1.5), and resumes its subscription. It never blocks (OnClose runs
// on nbio's executor): when the retrier's queue is full the slot is
// redialled at once, and when that queue is full too it is given up and
// counted as redial_queue_full.
func (r *Run) reconnectLater(s *shard, slot uint32) {
	r.attempts[slot] = 0 // the slot's holder, now: a new series of attempts
	d := retryDelay(1, r.cfg.RetryBackoff, 0, rand.Float64())
	select {
	case r.retryIn <- retryItem{due: time.Now().Add(d).UnixNano(), slot: slot, reconnect: true}:
		return
	default:
	}
	select {
	case r.redial <- slot:
	default:
		s.mu.Lock()
		s.errs["redial_queue_full"]++
		s.errCount++
		s.mu.Unlock()
	}
}

// retrier is the goroutine that holds slots waiting for their retry and
// hands each, when due, to a dialer. It returns when ctx ends.
func (r *Run) retrier(ctx context.Context) {
	var q retryHeap
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		var out chan<- retryItem
		var next retryItem
		if len(q) > 0 {
			if d := time.Until(time.Unix(0, q[0].due)); d <= 0 {
				out, next = r.retryOut, q[0]
			} else {
				t.Reset(d)
			}
		}
		select {
		case <-ctx.Done():
			return
		case it := <-r.retryIn:
			heap.Push(&q, it)
		case out <- next:
			heap.Pop(&q)
		case <-t.C:
		}
	}
}
