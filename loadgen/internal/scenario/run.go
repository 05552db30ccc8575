// Package scenario runs one wsload process's share of a scenario: it ramps
// connections open-loop, checks every message, samples itself once a
// second and produces a result.Result.
//
// Concurrency contract:
//   - Goroutines: one ramp goroutine (emits connection slots on a schedule),
//     on the callback dial (the default) one redialer (starts the retries and reconnects)
//     and no goroutine per dial: the ramp and the redialer start each dial
//     (engine.DialAsync) and its outcome runs the post-dial work (dialed)
//     on the goroutine that completes it — a poller, nbio's executor or
//     the engine's sweeper — which must not block there; at most
//     Config.Dialers dials are in flight (gate.go). With -std-dial (or
//     where the raw dial cannot be taken: IPv6 with -sources) the dial is
//     the standard library's, blocking: Config.Dialers dialer goroutines
//     (connect, upgrade, register) do it instead. One
//     reporter (once a second), with -retries (and in churn) one retrier
//     (holds slots until their retry or reconnect is due, retry.go), and
//     for some scenarios one driver (publisher, pinger or churner). All
//     exit when the run's context ends (after -duration) — but in churn the
//     dialers and the retrier go on through the grace, serving reconnects,
//     until drain returns; Run waits for them all, and for the dials in
//     flight, before it returns.
//   - A slot is held by one goroutine at a time (ramp → dialer → retrier
//     → dialer, or for churn poller → OnClose → redial or retrier →
//     dialer; on the callback dial the dial's completion stands for the
//     dialer), handed over by channels or by the engine's publish edge;
//     attempts[slot] belongs to its current holder.
//   - shard[i].mu guards everything in shard i: counters, the lag
//     histograms, the scratch ServerMsg, and the per-connection state of
//     the connections whose socket is served by poller i (state[slot]). A
//     slot's state moves to another shard only across a reconnect, which
//     is ordered by OnClose → redial channel → Dial's publish edge.
//   - connMu guards the connect histograms and the error map of dials.
//   - handles[slot] is an atomic pointer: written by dialers and OnClose,
//     read by the drivers (pinger, churner).
//   - topicMu guards the per-topic publish and epoch bookkeeping.
//   - unanswered (churn closes awaiting the server) belongs to the
//     churner, and to drain once the drivers have returned.
package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"wspush/loadgen/internal/engine"
	"wspush/loadgen/internal/selfmon"
	"wspush/loadgen/internal/seq"
	"wspush/loadgen/internal/targets"
	"wspush/loadgen/result"
	"wspush/server/wire"
)

// Run is one process's run.
type Run struct {
	cfg  Config
	plan targets.Plan
	eng  *engine.Engine
	mon  *selfmon.Monitor

	// Live, when set, receives each second instead of the stderr line
	// (worker processes forward it to the parent).
	Live func(result.Second, selfmon.Sample)
	// Log is where the live line and notes go (stderr by default).
	Log io.Writer

	shards  []shard
	state   []connState
	handles []atomic.Pointer[engine.Conn]
	redial  chan uint32

	attempts []uint8        // failed connects in a row per slot; nil without -retries (and churn)
	retryIn  chan retryItem // dialers, OnClose → retrier
	retryOut chan retryItem // retrier → dialers, unbuffered

	async   bool            // callback dials (DialAsync), no dialer pool; set by Execute (engine.CanDialAsync)
	gate    *gate           // dials in flight (async)
	dialCtx context.Context // the dialers' context, for completions (async)

	unanswered []closing // churn closes the server has not answered, oldest first (drivers.go)

	connMu   sync.Mutex
	connHist *result.Hist
	connSec  int64
	dialErrs map[string]int64
	errSec   int64

	established atomic.Int64
	peak        atomic.Int64
	sent        atomic.Int64
	retries     atomic.Int64 // retry dials made
	rampBehind  atomic.Int64 // worst lateness of the connect schedule, ns
	stopping    atomic.Bool
	// presEnd is when the presence check's counts end (Unix ns; 0: not
	// yet known): the end of -duration, the same instant in every worker
	// (Config.StartAt). A tick read after it is counted but its presence
	// count is not kept: from then on worker processes stop and close
	// their connections each at its own pace, and a count the server
	// puts on a tick after the first of those closes is right but lower
	// than the number the check compares with (onPresence).
	presEnd atomic.Int64

	topicMu  sync.Mutex
	lastPub  []uint64          // highest publish seq acknowledged, per topic
	epochs   []json.RawMessage // epoch first seen per topic
	pubErrs  map[string]int64
	pubCount int64

	topicStats []result.TopicStat

	series  []result.Second
	samples []selfmon.Sample
}

type shard struct {
	mu          sync.Mutex
	lag, lagSec *result.Hist
	scratch     wire.ServerMsg
	msgs        int64
	welcomes    int64
	gaps        int64
	dups        int64
	reorders    int64
	welcomeMiss int64
	pongs       int64
	ticks       int64            // ticks received (publish, churn: not in msgs)
	presTicks   int64            // of them, ticks that carried a presence field
	errs        map[string]int64 // protocol trouble and disconnects ("disc:" prefix)
	errCount    int64
	_           [64]byte
}

// connState is the per-connection state: 40 bytes.
type connState struct {
	win      seq.Window
	pres     int64 // last subscriber count a tick carried for its topic (-presence); 0 = none yet
	welcomed bool
	counted  bool // welcome_missing already counted for this connection
	subbed   bool // a "subscribed" reply arrived (publish, churn)
	resume   bool // next subscribe resumes from win.Max
	closing  bool // wsload closed it (churn)
}

// New prepares a run; Start it with Execute.
func New(cfg Config) (*Run, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	plan, err := targets.Parse(cfg.URL, cfg.Sources)
	if err != nil {
		return nil, err
	}
	r := &Run{
		cfg:      cfg,
		plan:     plan,
		shards:   make([]shard, cfg.Pollers),
		state:    make([]connState, cfg.Conns),
		handles:  make([]atomic.Pointer[engine.Conn], cfg.Conns),
		redial:   make(chan uint32, 1024),
		connHist: result.NewHist(),
		dialErrs: map[string]int64{},
		pubErrs:  map[string]int64{},
		mon:      selfmon.New(cfg.Pollers),
		gate:     newGate(cfg.Dialers),
	}
	for i := range r.shards {
		r.shards[i].lag, r.shards[i].lagSec = result.NewHist(), result.NewHist()
		r.shards[i].errs = map[string]int64{}
	}
	if cfg.Retries > 0 || cfg.Scenario == "churn" {
		r.attempts = make([]uint8, cfg.Conns)
		// OnClose hands churn's reconnects over without blocking: room
		// for a burst of disconnects.
		r.retryIn = make(chan retryItem, max(cfg.Dialers, 1024))
		r.retryOut = make(chan retryItem)
	}
	if cfg.Topics > 0 {
		r.lastPub = make([]uint64, cfg.Topics)
		r.epochs = make([]json.RawMessage, cfg.Topics)
	}
	return r, nil
}

// Execute runs the scenario for cfg.Duration (plus the grace period) and
// returns the result. It stops by itself; ctx can end it early.
func (r *Run) Execute(ctx context.Context) (*result.Result, error) {
	eng, err := engine.New(engine.Config{
		Pollers:      r.cfg.Pollers,
		DialTimeout:  r.cfg.Timeout,
		Path:         r.plan.Endpoints[0].Path,
		Handler:      r,
		OnDial:       r.onDial,
		PollerThread: r.mon.SetPollerThread,
		SSE:          r.cfg.Transport == "sse",
		ReadBatch:    r.cfg.ReadBatch,
		StdDial:      r.cfg.StdDial,
	})
	if err != nil {
		return nil, fmt.Errorf("wsload: %w", err)
	}
	// every dial of the run takes the engine's callback path (the raw dial
	// binds -sources too), or none: then dialer goroutines do them
	r.async = true
	for _, ep := range r.plan.Endpoints {
		r.async = r.async && eng.CanDialAsync(engine.Target{Addr: ep.Addr, Source: r.plan.Source(0)})
	}
	r.eng = eng
	if !r.cfg.StartAt.IsZero() {
		if d := time.Until(r.cfg.StartAt); d > 0 && d < time.Minute {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
	}
	start := time.Now()
	runCtx, cancel := context.WithDeadline(ctx, start.Add(r.cfg.Duration))
	end := start
	if !r.cfg.StartAt.IsZero() && r.cfg.StartAt.Before(start) {
		end = r.cfg.StartAt // a worker that started late: the others' end
	}
	r.presEnd.Store(end.Add(r.cfg.Duration).UnixNano())
	defer cancel()
	r.mon.Start(runCtx)
	// The dialers and the retrier stop with the run, but in churn they go
	// on serving reconnects through the grace: a client that was between
	// connections at the end resumes and gets what it missed, instead of
	// its missed messages counting as lost.
	dialCtx, stopDial := runCtx, context.CancelFunc(func() {})
	if r.cfg.Scenario == "churn" {
		dialCtx, stopDial = context.WithCancel(ctx)
	}
	defer stopDial()

	var wg, dialWG sync.WaitGroup
	r.dialCtx = dialCtx
	if r.async {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.ramp(runCtx, start, func(slot uint32) bool { return r.issue(runCtx, retryItem{slot: slot}) })
		}()
		dialWG.Add(1)
		go func() { defer dialWG.Done(); r.redialer(dialCtx) }()
	} else {
		slots := make(chan uint32, 2*r.cfg.Dialers)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(slots)
			r.ramp(runCtx, start, func(slot uint32) bool {
				select {
				case slots <- slot:
					return true
				case <-runCtx.Done():
					return false
				}
			})
		}()
		for range r.cfg.Dialers {
			dialWG.Add(1)
			go func() { defer dialWG.Done(); r.dialer(dialCtx, slots) }()
		}
	}
	if r.attempts != nil {
		dialWG.Add(1)
		go func() { defer dialWG.Done(); r.retrier(dialCtx) }()
	}
	if d := r.driver(); d != nil {
		wg.Add(1)
		go func() { defer wg.Done(); d(runCtx, start) }()
	}
	repDone := make(chan struct{})
	go func() { defer close(repDone); r.reporter(runCtx, start) }()

	<-runCtx.Done()
	wg.Wait()
	<-repDone
	r.drain(ctx)
	stopDial()
	dialWG.Wait()
	if r.async {
		// every dial is reported within -timeout (the engine's sweeper)
		r.gate.drain(time.Now().Add(r.cfg.Timeout + time.Second))
	}
	r.stopping.Store(true)
	final := r.eng.Live()
	r.tailLoss()
	elapsed := time.Since(start)
	r.eng.Stop()
	return r.result(start, elapsed, final), nil
}

// ramp emits local slots 0..Conns-1 at cfg.Rate, open loop: the schedule
// is fixed in advance; when dialers cannot keep up the lateness is
// recorded (ramp_behind_max_ms) instead of silently slowing down. emit
// hands a slot on (false: ctx ended); it sleeps only while ahead of the
// schedule by over a millisecond, so it wakes at most once a millisecond.
func (r *Run) ramp(ctx context.Context, start time.Time, emit func(slot uint32) bool) {
	step := float64(time.Second) / r.cfg.Rate
	for j := 0; j < r.cfg.Conns; j++ {
		due := start.Add(time.Duration(float64(j) * step))
		if d := time.Until(due); d > time.Millisecond {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if !emit(uint32(j)) {
			return
		}
		if late := time.Since(due); late > 0 {
			for {
				old := r.rampBehind.Load()
				if int64(late) <= old || r.rampBehind.CompareAndSwap(old, int64(late)) {
					break
				}
			}
		}
	}
}

// dialer connects the slots it is given, the slots churn hands back and
// the ones the retrier hands back (failed connects, churn's reconnects).
func (r *Run) dialer(ctx context.Context, slots <-chan uint32) {
	for {
		var it retryItem
		var ok bool
		select {
		case <-ctx.Done():
			return
		case it.slot, ok = <-slots:
			if !ok {
				slots = nil // ramp finished; keep serving redials
				continue
			}
		case it.slot = <-r.redial:
			it.reconnect = true
		case it = <-r.retryOut:
		}
		r.dial(ctx, it)
	}
}

// dial connects it.slot: for the first time, again after a failed connect
// (it.retry), or again after the slot's connection ended (it.reconnect). A
// failure is counted and, with -retries or for a reconnect, scheduled for
// another attempt.
func (r *Run) dial(ctx context.Context, it retryItem) {
	if it.retry {
		r.retries.Add(1)
	}
	c, took, err := r.eng.Dial(r.target(it.slot), it.slot)
	r.dialed(ctx, it, c, took, err)
}

// target is where slot's connection goes.
func (r *Run) target(slot uint32) engine.Target {
	g := r.cfg.Offset + int(slot)*r.cfg.Stride
	ep := r.plan.Endpoint(g)
	tg := engine.Target{Addr: ep.Addr, Host: ep.Host, Source: r.plan.Source(g)}
	if r.cfg.Transport == "sse" && r.cfg.Scenario == "publish" {
		tg.Path = sseTopicPath(ep.Path, topicName(r.topicOf(slot))) // the subscription is in the URL
	}
	return tg
}

// dialed is the work after a dial of it.slot ended (c, took; or err): the
// connect histogram and counters, the error class, the retry, the
// handle and the subscription. It runs on the dialer (standard dial) or
// on the goroutine that completed the dial (onDial): it never blocks.
func (r *Run) dialed(ctx context.Context, it retryItem, c *engine.Conn, took time.Duration, err error) {
	slot := it.slot
	r.connMu.Lock()
	if err != nil {
		class := engine.Classify(err)
		r.dialErrs[class]++
		r.errSec++
		r.connMu.Unlock()
		r.retryLater(ctx, slot, err, class, it.reconnect)
		return
	}
	if r.attempts != nil && r.attempts[slot] != 0 {
		r.attempts[slot] = 0 // connected: the next failure starts over
	}
	r.connHist.Record(took.Microseconds())
	r.connSec++
	r.connMu.Unlock()
	r.established.Add(1)
	if live := r.eng.Live(); live > r.peak.Load() {
		r.peak.Store(live) // approximate under races; reporter also samples
	}
	r.handles[slot].Store(c)
	switch {
	case r.cfg.Broadcast:
		// no sub: the server's broadcasts reach every connection
		s := &r.shards[c.Shard]
		s.mu.Lock()
		r.state[slot].subbed = true
		s.mu.Unlock()
	case r.cfg.Scenario == "publish" || r.cfg.Scenario == "churn":
		r.subscribe(c)
	}
}

// drain waits, up to cfg.Grace, for owed deliveries to arrive (and, in
// churn, for every slot between connections to be subscribed again).
func (r *Run) drain(ctx context.Context) {
	if r.cfg.Grace <= 0 || (r.cfg.Scenario != "publish" && r.cfg.Scenario != "churn" && r.cfg.Scenario != "echo") {
		return
	}
	deadline := time.Now().Add(r.cfg.Grace)
	last, stable := int64(-1), 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		r.abortUnanswered(time.Now().UnixNano())
		n := r.totalMsgs()
		if n == last {
			stable++
			if stable >= 5 && r.settled() { // 250 ms without a new message
				return
			}
		} else {
			stable = 0
		}
		last = n
		time.Sleep(50 * time.Millisecond)
	}
}

// settled reports whether no slot is between connections: none closing,
// none waiting to resume its subscription.
func (r *Run) settled() bool {
	if r.cfg.Scenario != "churn" {
		return true
	}
	for i := range r.shards {
		r.shards[i].mu.Lock()
	}
	defer func() {
		for i := range r.shards {
			r.shards[i].mu.Unlock()
		}
	}()
	for i := range r.state {
		if st := &r.state[i]; st.closing || (st.resume && !st.subbed) {
			return false
		}
	}
	return true
}

func (r *Run) totalMsgs() int64 {
	var n int64
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		n += s.msgs
		s.mu.Unlock()
	}
	return n
}

// reporter samples once a second until ctx ends, and once more at the end.
func (r *Run) reporter(ctx context.Context, start time.Time) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var prevMsgs, prevGaps, prevErr int64
	sec := 0
	agg := result.NewHist()
	tick := func() {
		// The second is the wall clock's: a starved process whose ticker
		// dropped ticks skips seconds (this point then holds their counts)
		// rather than falling behind the other workers' clocks.
		sec = max(sec+1, int((time.Since(start)+time.Second/2)/time.Second))
		agg.Reset()
		var msgs, gaps, errs int64
		for i := range r.shards {
			s := &r.shards[i]
			s.mu.Lock()
			agg.Merge(s.lagSec)
			s.lagSec.Reset()
			msgs += s.msgs
			gaps += s.gaps
			errs += s.errCount
			s.mu.Unlock()
		}
		r.connMu.Lock()
		connects, dialErrs := r.connSec, r.errSec
		r.connSec, r.errSec = 0, 0
		r.connMu.Unlock()
		live := r.eng.Live()
		if live > r.peak.Load() {
			r.peak.Store(live)
		}
		smp := r.mon.Sample()
		pc := agg.Percentiles()
		s := result.Second{
			T: sec, Conns: live, Connects: connects,
			Msgs: msgs - prevMsgs, Gaps: gaps - prevGaps, Errors: errs - prevErr + dialErrs,
			LagP50: pc.P50, LagP99: pc.P99, LagMax: pc.Max, CPU: smp.CPUCores,
			LagHist: agg.Encode(),
		}
		prevMsgs, prevGaps, prevErr = msgs, gaps, errs
		r.series = append(r.series, s)
		r.samples = append(r.samples, smp)
		if r.Live != nil {
			r.Live(s, smp)
		} else if r.Log != nil {
			fmt.Fprintln(r.Log, LiveLine(s, smp, r.cfg.Conns, r.peakErrs()))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			tick()
		}
	}
}

func (r *Run) peakErrs() int64 {
	var n int64
	r.connMu.Lock()
	for _, v := range r.dialErrs {
		n += v
	}
	r.connMu.Unlock()
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		n += s.errCount
		s.mu.Unlock()
	}
	return n
}

// sseTopicPath adds the connection's topic to an SSE URL's query.
func sseTopicPath(path, topic string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "topics=" + topic
}
