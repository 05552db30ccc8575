package hub

import (
	"sync"
	"time"

	"wspush/server/internal/bus"
	"wspush/server/internal/wheel"
	"wspush/server/wire"
)

var pingFrame = []byte{0x80 | wire.OpPing, 0}

type closing struct {
	c  *Client
	at int64 // Unix ns after which the socket is closed
}

// shard is one wheel and the goroutine that drives it.
type shard struct {
	h    *Hub
	idx  int
	wake chan struct{} // signalled when the inbox gets an item

	mu     sync.Mutex // guards adds, dels, closes, inbox, queued, plan and placed
	adds   []*Client
	dels   []*Client
	closes []closing
	inbox  []item
	queued int            // messages (not subscription changes) in inbox
	plan   *wheel.Planner // the wheel's slot loads, counted by Place and Unregister
	placed uint32         // clients placed, for their tick phases

	// Owned by the shard goroutine.
	wheel   *wheel.Wheel[*Client]
	streams map[*bus.Topic][]*sub // stream subscriptions by topic (topics.go)
	work    []item                // the inbox being worked through
	buf     []byte                // scratch for encoding frames
	ebuf    []byte                // scratch for SSE events (sse.go)
	evMsg   *bus.Message          // the message ev encodes (sse.go)
	ev      []byte                // evMsg as an SSE event, without its id
	evEpoch string                // evMsg's epoch when it has a notice
	closing []closing             // close deadlines, in order
	spare   [3][]*Client
	drained []*Client // clients left to drain, during Drain
	drainOn bool
	credit  float64
	last    time.Time

	// counts flushed to metrics once per slot or inbox
	pushes, frames, bytes, delivered uint64
}

func (s *shard) run(stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d := time.Until(s.wheel.NextDue())
		if s.h.quiet() && len(s.closing) == 0 {
			// No slot has anything to do: wake for the inbox, or once a
			// visit period. A client given an expiry meanwhile is
			// visited within the next period; a close queued meanwhile
			// (slow consumer) is seen at that wake-up, so its socket
			// may outlast its close grace by up to a visit period (1 s).
			d = s.h.visitPeriod
		}
		if d > 0 {
			timer.Reset(d)
			select {
			case <-stop:
				return
			case <-timer.C:
			case <-s.wake:
			}
		} else {
			select {
			case <-stop:
				return
			default:
			}
		}
		s.step(time.Now())
	}
}

// step is one wake-up: apply what other goroutines queued, visit every due
// slot, then admit new clients in the slots Place chose (catching up the
// visits of theirs that are already past).
func (s *shard) step(now time.Time) {
	nowNs := now.UnixNano()
	s.h.clock.Store(nowNs)

	s.mu.Lock()
	adds, dels, closes, inbox := s.adds, s.dels, s.closes, s.inbox
	s.adds, s.dels, s.closes, s.inbox = s.spare[0][:0], s.spare[1][:0], nil, s.work[:0]
	s.queued = 0
	s.mu.Unlock()

	for _, c := range dels {
		s.wheel.Remove(c)
	}
	s.closing = append(s.closing, closes...)
	for i := range inbox {
		s.handle(&inbox[i], adds)
		inbox[i] = item{}
	}
	s.work = inbox
	s.flush()

	visited := s.wheel.Advance(now, s.visit)
	if visited > 1 && !s.h.quiet() { // a quiet shard skips slots on purpose
		s.h.m.SlotsBehind.Add(visited - 1)
	}
	for _, c := range adds {
		if c.state.Load() == stateOpen {
			_ = s.wheel.AddAt(c, int(c.slot))
			s.catchUp(c)
			if s.drainOn {
				s.drained = append(s.drained, c)
			}
		}
	}
	s.flush()
	s.expireClosing(nowNs)
	s.drainStep(now)

	clear(adds)
	clear(dels)
	s.spare[0], s.spare[1] = adds, dels
}

// catchUp makes the visits of c, just added, that Place planned but the
// wheel has already passed (the shard woke late, or c's slot came due
// between Place and this wake-up), in order, each with its own due time:
// so c's first tick is due when its welcome said, and its ticks stay one
// interval apart. c.first holds the low 32 bits of the planned first
// visit's number, enough for a distance of fewer than 2³¹ slots.
func (s *shard) catchUp(c *Client) {
	next := s.wheel.Next()
	behind := int64(uint32(next) - c.first) // slots from the planned first visit to next
	if behind <= 0 || behind >= 1<<31 {
		return // not passed yet
	}
	n := int64(s.wheel.Slots())
	for k := next - behind; k < next && c.state.Load() == stateOpen; k += n {
		s.visitClient(c, s.wheel.Due(k).UnixNano(), s.h.Now())
	}
}

// visit is called by the wheel for each due slot.
func (s *shard) visit(due time.Time, clients []*Client) {
	if s.h.quiet() {
		return // nothing a visit could do
	}
	dueNs := due.UnixNano()
	now := s.h.Now()
	for _, c := range clients {
		if c.state.Load() == stateOpen {
			s.visitClient(c, dueNs, now)
		}
	}
	s.flush()
	if len(clients) > 0 {
		s.h.m.TickLag.Update(time.Since(due).Seconds())
	}
}

// visitClient is one open client's visit: close it if its token expired,
// push its tick when one is due, close it if idle, ping it when due.
func (s *shard) visitClient(c *Client, dueNs, now int64) {
	h := s.h
	if exp := c.expires.Load(); exp != 0 && now >= exp {
		c.CloseWith(CloseExpired)
		return
	}
	c.visits++
	if h.pushEvery != 0 && (c.visits+uint32(c.phase))%h.pushEvery == 0 {
		s.tick(c, dueNs)
	}
	if h.cfg.IdleTimeout != Disabled && !c.isSSE() && now-c.lastRead.Load() > int64(h.cfg.IdleTimeout) {
		c.CloseWith(CloseIdle)
		return
	}
	if h.pingEvery != 0 && c.visits%h.pingEvery == 0 && c.Send(pingFrame) {
		s.frames++
		s.bytes += uint64(len(pingFrame))
	}
}

// tick encodes c's next tick, with its changed latest-mode values and
// presence counts, into the shard's scratch buffer and writes it.
func (s *shard) tick(c *Client, dueNs int64) {
	cfg := &s.h.cfg
	c.seq++
	if c.isSSE() && (c.latest == nil || len(*c.latest) == 0) {
		s.tickSSE(c, dueNs) // sse.go
		return
	}
	buf := wire.AppendTickOpen(wire.BeginFrame(s.buf), c.seq, dueNs, cfg.PushText)
	if c.latest == nil || len(*c.latest) == 0 {
		buf = append(buf, '}')
	} else {
		buf = appendLatest(buf, c, cfg.MaxUnsent/2)
	}
	s.buf = buf
	frame := wire.EndFrame(buf, wire.OpText)
	if c.Send(frame) {
		s.pushes++
		s.frames++
		s.bytes += uint64(len(frame))
	}
}

// flush adds the shard's counts to the metrics.
func (s *shard) flush() {
	m := s.h.m
	if s.pushes != 0 {
		m.Pushes.Add(int(s.pushes))
	}
	if s.frames != 0 {
		m.FramesOut.Add(int(s.frames))
		m.BytesOut.Add(int(s.bytes))
	}
	if s.delivered != 0 {
		m.Delivered.Add(int(s.delivered))
	}
	s.pushes, s.frames, s.bytes, s.delivered = 0, 0, 0, 0
}

// expireClosing closes the sockets of clients that did not answer their
// close frame in time.
func (s *shard) expireClosing(now int64) {
	i := 0
	for ; i < len(s.closing) && s.closing[i].at <= now; i++ {
		_ = s.closing[i].c.conn.Close()
		s.closing[i] = closing{}
	}
	s.closing = s.closing[i:]
	if len(s.closing) == 0 {
		s.closing = nil
	}
}

// drainStep closes this wake-up's share of clients while the hub drains.
func (s *shard) drainStep(now time.Time) {
	order := s.h.drain.Load()
	if order == nil {
		return
	}
	if !s.drainOn {
		s.drainOn = true
		s.last = now
		s.wheel.Each(func(c *Client) { s.drained = append(s.drained, c) })
		s.credit = 1
	}
	s.credit += now.Sub(s.last).Seconds() * order.perShard
	s.last = now
	for s.credit >= 1 && len(s.drained) > 0 {
		c := s.drained[len(s.drained)-1]
		s.drained[len(s.drained)-1] = nil
		s.drained = s.drained[:len(s.drained)-1]
		if c.state.Load() == stateOpen {
			c.CloseWith(CloseShutdown)
			s.credit--
		}
	}
}
