package hub

import (
	"wspush/server/internal/bus"
	"wspush/server/wire"
)

// This file is the hub's side of the bus: subscriptions and fan-out.
//
// A topic's stream subscribers are kept per shard, by the shard goroutine
// that owns the clients. The bus calls Deliver with the topic's lock held,
// in sequence order, and Deliver appends the message to the inbox of every
// shard with subscribers of that topic; subscription changes reach the same
// inboxes under the same lock. Each shard works through its inbox in order,
// so a subscriber sees its subscribed frame, then any replay, then the live
// messages, with no gap and no duplicate. The encoded frame is shared:
// fan-out writes the same bytes to every subscriber.

type itemKind uint8

const (
	itemSub itemKind = iota
	itemUnsub
	itemMsg
	itemBroadcast
)

// item is one entry of a shard's inbox.
type item struct {
	kind   itemKind
	latest bool // itemSub, itemUnsub: a latest-mode subscription
	c      *Client
	t      *bus.Topic
	m      *bus.Message
	replay []*bus.Message
	reply  []byte // a frame to send the client first (subscribed, unsubscribed)
	sent   uint64 // itemSub, latest mode: the seq the client already has
}

// fanout is a topic's count of stream subscribers per shard. It is read and
// written only with the topic's lock held.
type fanout struct{ perShard []int32 }

// Subscription is a client's subscription to one topic, as the goroutine
// handling the client's messages records it.
type Subscription struct {
	Topic  *bus.Topic
	Latest bool
}

// The methods below are for the goroutine that owns c's subscription list
// (the one handling c's messages and its close).

// Sub returns c's subscription to the topic named name.
func (c *Client) Sub(name string) (Subscription, bool) {
	if c.subList == nil {
		return Subscription{}, false
	}
	for _, s := range *c.subList {
		if s.Topic.Name() == name {
			return s, true
		}
	}
	return Subscription{}, false
}

// Subs is how many subscriptions c has.
func (c *Client) Subs() int {
	if c.subList == nil {
		return 0
	}
	return len(*c.subList)
}

// AddSub records a subscription of c.
func (c *Client) AddSub(s Subscription) {
	if c.subList == nil {
		c.subList = new([]Subscription)
	}
	*c.subList = append(*c.subList, s)
}

// DropSub removes c's subscription to the topic named name, if any.
func (c *Client) DropSub(name string) {
	if c.subList == nil {
		return
	}
	l := *c.subList
	for i, s := range l {
		if s.Topic.Name() == name {
			last := len(l) - 1
			l[i] = l[last]
			l[last] = Subscription{}
			*c.subList = l[:last]
			return
		}
	}
}

// TakeSubs returns c's subscriptions and forgets them (on close).
func (c *Client) TakeSubs() []Subscription {
	if c.subList == nil {
		return nil
	}
	l := *c.subList
	c.subList = nil
	return l
}

// Subscribe starts c's subscription to t. It is called by the bus with t's
// lock held (see bus.Subscribe). reply is sent first, then the replay.
func (h *Hub) Subscribe(c *Client, t *bus.Topic, latest bool, s bus.Start, sent uint64, reply []byte) {
	sh := c.shard
	if !latest {
		f := h.fanout(t, true)
		f.perShard[sh.idx]++
	}
	sh.enqueue(item{kind: itemSub, latest: latest, c: c, t: t, replay: s.Replay, reply: reply, sent: sent}, false)
}

// Unsubscribe ends c's subscription to t, with t's lock held (see
// bus.Unsubscribe). reply, if not nil, is sent once it has ended.
func (h *Hub) Unsubscribe(c *Client, t *bus.Topic, latest bool, reply []byte) {
	sh := c.shard
	if !latest {
		if f := h.fanout(t, false); f != nil {
			f.perShard[sh.idx]--
			if allZero(f.perShard) {
				h.fans.Delete(t)
			}
		}
	}
	sh.enqueue(item{kind: itemUnsub, latest: latest, c: c, t: t, reply: reply}, false)
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
func (h *Hub) Deliver(m *bus.Message) {
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
func (h *Hub) Broadcast(m *bus.Message) {
	for _, s := range h.shards {
		s.enqueue(item{kind: itemBroadcast, m: m}, true)
	}
}

// Overloaded implements bus.Local: a shard has more messages queued than
// the cap.
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

// topicSubs is a client's subscriptions as its shard sees them, kept apart
// from Client so that clients without subscriptions (most, in a tick-only
// deployment) do not pay for it.
type topicSubs struct {
	streams []streamPos // stream subscriptions
	latest  []latestSub // latest-mode subscriptions
}

// subs returns c's subscription state, created on first use.
func (c *Client) subs() *topicSubs {
	if c.topics == nil {
		c.topics = &topicSubs{}
	}
	return c.topics
}

// streamPos is where a client stands in one of its shard's topic lists.
type streamPos struct {
	t *bus.Topic
	i int32
}

// latestSub is a client's latest-mode subscription: the seq it has.
type latestSub struct {
	t    *bus.Topic
	sent uint64
}

// handle applies one inbox item; fresh holds the clients registered in this
// wake-up, not yet in the wheel.
func (s *shard) handle(it *item, fresh []*Client) {
	switch it.kind {
	case itemSub:
		s.handleSub(it)
	case itemUnsub:
		s.handleUnsub(it)
	case itemMsg:
		s.handleMsg(it.m)
	case itemBroadcast:
		s.handleBroadcast(it.m, fresh)
	}
}

// handleSub starts a subscription: the subscribed reply, then any replay,
// then the client joins the topic's list (stream) or its latest set.
func (s *shard) handleSub(it *item) {
	c := it.c
	s.send(c, it.reply)
	deflate := c.compress.Load()
	for _, m := range it.replay {
		s.send(c, m.FrameFor(deflate))
	}
	ts := c.subs()
	if it.latest {
		ts.latest = append(ts.latest, latestSub{t: it.t, sent: it.sent})
		return
	}
	list := s.streams[it.t]
	ts.streams = append(ts.streams, streamPos{t: it.t, i: int32(len(list))})
	s.streams[it.t] = append(list, c)
}

// handleUnsub ends a subscription, then sends the unsubscribed reply.
func (s *shard) handleUnsub(it *item) {
	c := it.c
	if it.latest {
		s.removeLatest(c, it.t)
	} else {
		s.removeStream(c, it.t)
	}
	s.send(c, it.reply)
}

// handleMsg writes a topic message to the topic's stream subscribers on
// this shard, preceded by its notice if it has one.
func (s *shard) handleMsg(m *bus.Message) {
	for _, c := range s.streams[m.Topic] {
		if m.Notice != nil {
			if !c.compress.Load() {
				// One write for the notice and the message.
				if c.Send(m.NoticeFrame) {
					s.count(len(m.Notice))
					s.count(len(m.Frame))
					s.delivered++
				}
				continue
			}
			s.send(c, m.Notice)
		}
		s.deliver(c, m)
	}
}

// handleBroadcast writes a broadcast to every client of the shard: those
// in the wheel and those registered in this wake-up.
func (s *shard) handleBroadcast(m *bus.Message, fresh []*Client) {
	s.wheel.Each(func(c *Client) { s.deliver(c, m) })
	for _, c := range fresh {
		s.deliver(c, m)
	}
}

// send writes a frame that is not a delivery (a reply, a replayed message,
// a notice) to c and counts it; a nil frame is skipped.
func (s *shard) send(c *Client, frame []byte) {
	if frame != nil && c.Send(frame) {
		s.count(len(frame))
	}
}

// removeLatest takes t out of c's latest-mode subscriptions.
func (s *shard) removeLatest(c *Client, t *bus.Topic) {
	ts := c.subs()
	for i, l := range ts.latest {
		if l.t == t {
			ts.latest = append(ts.latest[:i], ts.latest[i+1:]...)
			return
		}
	}
}

// deliver writes m to c, compressed if c negotiated it.
func (s *shard) deliver(c *Client, m *bus.Message) {
	f := m.Frame
	if c.compress.Load() {
		f = m.FrameFor(true)
	}
	if c.Send(f) {
		s.count(len(f))
		s.delivered++
	}
}

func (s *shard) count(n int) {
	s.frames++
	s.bytes += uint64(n)
}

// removeStream takes c out of t's list in O(subscriptions of c).
func (s *shard) removeStream(c *Client, t *bus.Topic) {
	if c.topics == nil {
		return
	}
	cs := c.topics
	k := -1
	for j, p := range cs.streams {
		if p.t == t {
			k = j
			break
		}
	}
	if k < 0 {
		return
	}
	i := cs.streams[k].i
	cs.streams = append(cs.streams[:k], cs.streams[k+1:]...)
	list := s.streams[t]
	last := len(list) - 1
	if int(i) != last {
		moved := list[last]
		list[i] = moved
		ms := moved.topics.streams
		for j := range ms {
			if ms[j].t == t {
				ms[j].i = i
				break
			}
		}
	}
	list[last] = nil
	if last == 0 {
		delete(s.streams, t)
	} else {
		s.streams[t] = list[:last]
	}
}

// appendLatest adds the "topics" of c's latest-mode subscriptions that
// changed since its last tick to an open tick payload, and closes it. Once
// the payload passes budget bytes, the remaining changes wait for the next
// tick, so that one tick stays well under the client's write cap.
func appendLatest(buf []byte, c *Client, budget int) []byte {
	open := false
	start := len(buf)
	latest := c.topics.latest
	off := int(c.visits) % len(latest) // rotate, so no topic starves behind the budget
	for j := range latest {
		l := &latest[(off+j)%len(latest)]
		m := l.t.Latest()
		if m == nil || m.Seq <= l.sent {
			continue
		}
		if open && len(buf)-start+len(m.Data)+len(l.t.Name())+40 > budget {
			break
		}
		if open {
			buf = append(buf, ',')
		} else {
			buf = append(buf, `,"topics":{`...)
			open = true
		}
		buf = wire.AppendLatestEntry(buf, l.t.Name(), m.Seq, m.Data)
		l.sent = m.Seq
	}
	if open {
		buf = append(buf, '}')
	}
	return append(buf, '}')
}
