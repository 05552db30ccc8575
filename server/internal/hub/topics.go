package hub

import (
	"fmt"
	"slices"

	"wspush/server/internal/bus"
	"wspush/server/wire"
)

// This file is the hub's side of the bus: subscriptions and fan-out. The
// shard's side, working through its inbox, is inbox.go.
//
// A topic's stream subscribers are kept per shard, by the shard goroutine
// that owns the clients. The bus calls the hub's Local (busSide) with the
// topic's lock held: Deliver, in sequence order, appends the message to
// the inbox of every shard with subscribers of that topic; Subscribe and
// Unsubscribe append the subscription change to the client's shard's inbox
// under the same lock. Each shard works through its inbox in order, so a
// subscriber sees its subscribed frame, then any replay, then the live
// messages, with no gap and no duplicate. The encoded frame is shared:
// fan-out writes the same bytes to every subscriber.

type itemKind uint8

const (
	itemSub itemKind = iota
	itemUnsub
	itemMsg
	itemBroadcast
	itemPresence // a member list change, for presence subscribers (presence.go)
)

// item is one entry of a shard's inbox.
type item struct {
	kind   itemKind
	sub    *sub // itemSub, itemUnsub
	m      *bus.Message
	replay []*bus.Message
	reply  []byte // a frame to send the client first (subscribed, unsubscribed)
	// itemSub: where the subscription begins (Start.Epoch, Start.Last),
	// for SSE clients' positions (sse.go)
	epoch string
	last  uint64
}

// sub is a client's subscription to one topic: the one record of it. The
// client's list (Client.subs) and, on the client's shard, the topic's list
// (stream mode) or the client's latest list (latest mode) point to it.
type sub struct {
	c      *Client
	t      *bus.Topic
	latest bool // latest mode; c, t, latest and presence never change
	// presence: the client's ticks carry t's subscriber count (Topic.Count)
	// when it changed; such a record is in the client's latest list too.
	presence bool
	// Owned by the shard goroutine (set before the record is queued):
	pos  int32  // stream mode: index in the shard's list of t
	sent uint64 // latest mode: the seq the client has
}

// shown is, for a presence record, the count last put on the client's
// ticks (-1 before the first). It is kept in the field the record's mode
// leaves unused (sent in stream mode, pos in latest mode), so that presence
// adds nothing to a record (32 bytes, a size class).
func (r *sub) shown() int64 {
	if r.latest {
		return int64(r.pos)
	}
	return int64(r.sent)
}

func (r *sub) setShown(n int64) {
	if r.latest {
		r.pos = int32(min(n, 1<<31-1))
	} else {
		r.sent = uint64(n)
	}
}

// fanout is a topic's count of stream subscribers per shard. It is read and
// written only with the topic's lock held.
type fanout struct{ perShard []int32 }

// A client's subscription list (Client.subs) is copied on write: it
// changes only inside Local.Subscribe and Local.Unsubscribe, with the
// topic's lock held (so at most one change per topic at a time; changes to
// different topics retry their swap), and it may be read from any
// goroutine.

// Subscribed reports whether c has a subscription to the topic named name.
func (c *Client) Subscribed(name string) bool { return find(c.subList(), name) >= 0 }

// Subs is how many subscriptions c has.
func (c *Client) Subs() int { return len(c.subList()) }

// Topics returns the names of the topics c is subscribed to (for its
// close, which ends them all).
func (c *Client) Topics() []string {
	l := c.subList()
	if len(l) == 0 {
		return nil
	}
	names := make([]string, len(l))
	for i, s := range l {
		names[i] = s.t.Name()
	}
	return names
}

func (c *Client) subList() []*sub {
	if p := c.subs.Load(); p != nil {
		return *p
	}
	return nil
}

func find(l []*sub, name string) int {
	return slices.IndexFunc(l, func(s *sub) bool { return s.t.Name() == name })
}

// addSub adds r to c's list; false if c already has a subscription to r's
// topic.
func (c *Client) addSub(r *sub) bool {
	for {
		p := c.subs.Load()
		var l []*sub
		if p != nil {
			l = *p
		}
		if find(l, r.t.Name()) >= 0 {
			return false
		}
		nl := append(slices.Clip(l), r) // a new array: readers keep the old one
		if c.subs.CompareAndSwap(p, &nl) {
			return true
		}
	}
}

// dropSub removes and returns c's subscription to t, nil if it has none.
func (c *Client) dropSub(t *bus.Topic) *sub {
	for {
		p := c.subs.Load()
		if p == nil {
			return nil
		}
		i := slices.IndexFunc(*p, func(s *sub) bool { return s.t == t })
		if i < 0 {
			return nil
		}
		var np *[]*sub
		if len(*p) > 1 {
			nl := slices.Delete(slices.Clone(*p), i, i+1)
			np = &nl
		}
		if c.subs.CompareAndSwap(p, np) {
			return (*p)[i]
		}
	}
}

// busSide is the hub as the bus's Local. Its methods rely on the bus's
// topic lock, so they are reachable only through the bus.Local that Local
// returns.
type busSide Hub

// Local returns the hub's side of the bus, for bus.New alone: the bus calls
// it with a topic's lock held.
func (h *Hub) Local() bus.Local { return (*busSide)(h) }

// Subscribe implements bus.Local: it records the subscription and queues
// it, with its subscribed reply and replay, on the client's shard.
func (b *busSide) Subscribe(t *bus.Topic, s bus.Subscription, st bus.Start) error {
	c, ok := s.Subscriber.(*Client)
	if !ok || c.shard == nil || c.h != (*Hub)(b) {
		return fmt.Errorf("hub: subscriber %T is not a registered client of this hub", s.Subscriber)
	}
	h := (*Hub)(b)
	rec := &sub{c: c, t: t, latest: s.Latest, presence: s.Presence}
	if s.Presence {
		rec.setShown(-1)
	}
	if !c.addSub(rec) {
		return fmt.Errorf("hub: client %s is already subscribed to %q", c.ID(), t.Name())
	}
	mode := wire.ModeStream
	if s.Latest {
		mode = wire.ModeLatest
		if s.Resume.HasSince && !st.Gone {
			rec.sent = s.Resume.Since
		}
		st.Replay = nil // a latest-mode client gets the newest value on its next tick
	} else {
		h.fanout(t, true).perShard[c.shard.idx]++
	}
	var reply []byte
	if !s.Quiet {
		p := wire.AppendSubscribedData(wire.BeginFrame(nil), t.Name(), mode, st.Last, st.Epoch, st.Gone, s.Data, s.ID)
		if s.Members != nil { // presence on a member topic (presence.go)
			p = wire.AppendMembers(p[:len(p)-1], s.Members)
		}
		reply = wire.EndFrame(p, wire.OpText)
	}
	c.shard.enqueue(item{kind: itemSub, sub: rec, replay: st.Replay, reply: reply, epoch: st.Epoch, last: st.Last}, false)
	return nil
}

// Unsubscribe implements bus.Local: it forgets the subscription and queues
// its end, with the unsubscribed reply, on the client's shard.
func (b *busSide) Unsubscribe(t *bus.Topic, s bus.Subscription) bool {
	c, ok := s.Subscriber.(*Client)
	if !ok || c.h != (*Hub)(b) {
		return false
	}
	rec := c.dropSub(t)
	if rec == nil {
		return false
	}
	h := (*Hub)(b)
	if !rec.latest {
		if f := h.fanout(t, false); f != nil {
			f.perShard[c.shard.idx]--
			if allZero(f.perShard) {
				h.fans.Delete(t)
			}
		}
	}
	var reply []byte
	if !s.Quiet {
		reply = wire.EndFrame(wire.AppendUnsubscribed(wire.BeginFrame(nil), t.Name(), s.ID), wire.OpText)
	}
	c.shard.enqueue(item{kind: itemUnsub, sub: rec, reply: reply}, false)
	return true
}

func allZero(v []int32) bool {
	for _, n := range v {
		if n != 0 {
			return false
		}
	}
	return true
}

func (h *Hub) fanout(t *bus.Topic, create bool) *fanout {
	if f, ok := h.fans.Load(t); ok {
		return f.(*fanout)
	}
	if !create {
		return nil
	}
	f := &fanout{perShard: make([]int32, len(h.shards))}
	h.fans.Store(t, f)
	return f
}

// Deliver implements bus.Local: it queues m on every shard with stream
// subscribers of its topic.
func (b *busSide) Deliver(m *bus.Message) {
	h := (*Hub)(b)
	f := h.fanout(m.Topic, false)
	if f == nil {
		return
	}
	for i, n := range f.perShard {
		if n > 0 {
			h.shards[i].enqueue(item{kind: itemMsg, m: m}, true)
		}
	}
}

// Broadcast implements bus.Local: it queues m on every shard.
func (b *busSide) Broadcast(m *bus.Message) {
	for _, s := range b.shards {
		s.enqueue(item{kind: itemBroadcast, m: m}, true)
	}
}

// Overloaded implements bus.Local (see Hub.Overloaded).
func (b *busSide) Overloaded() bool { return (*Hub)(b).Overloaded() }

// Overloaded reports whether a shard has more messages queued than the
// cap; publishes are then refused. It may be called from any goroutine.
func (h *Hub) Overloaded() bool {
	for _, s := range h.shards {
		s.mu.Lock()
		n := s.queued
		s.mu.Unlock()
		if n >= h.cfg.MaxQueue {
			return true
		}
	}
	return false
}

// enqueue appends it to the shard's inbox and wakes the shard.
func (s *shard) enqueue(it item, counted bool) {
	s.mu.Lock()
	s.inbox = append(s.inbox, it)
	if counted {
		s.queued++
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
