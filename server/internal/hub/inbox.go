package hub

import (
	"wspush/server/internal/bus"
	"wspush/server/wire"
)

// This file is the shard's side of subscriptions and fan-out: working
// through the inbox that topics.go fills. Everything here runs on the
// shard goroutine.

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
	case itemPresence:
		s.handlePresence(it.m)
	}
}

// handleSub starts a subscription: the subscribed reply, then any replay,
// then the record joins the topic's list (stream) or the client's latest
// list.
func (s *shard) handleSub(it *item) {
	r := it.sub
	c := r.c
	if c.isSSE() {
		s.subSSE(it) // sse.go
	} else {
		s.send(c, it.reply)
		deflate := c.compress.Load()
		for _, m := range it.replay {
			s.send(c, m.FrameFor(deflate))
		}
	}
	if r.latest || r.presence {
		if c.latest == nil {
			c.latest = new([]*sub)
		}
		*c.latest = append(*c.latest, r)
		if r.latest {
			return
		}
	}
	list := s.streams[r.t]
	r.pos = int32(len(list))
	s.streams[r.t] = append(list, r)
}

// handleUnsub ends a subscription, then sends the unsubscribed reply.
func (s *shard) handleUnsub(it *item) {
	r := it.sub
	if r.latest || r.presence {
		removeLatest(r)
	}
	if !r.latest {
		s.removeStream(r)
	}
	if r.c.isSSE() {
		if !r.latest {
			s.sseEnd(r.c, r.t)
		}
		s.replySSE(r.c, it.reply, false)
		return
	}
	s.send(r.c, it.reply)
}

// handleMsg writes a topic message to the topic's stream subscribers on
// this shard, preceded by its notice if it has one.
func (s *shard) handleMsg(m *bus.Message) {
	for _, r := range s.streams[m.Topic] {
		c := r.c
		if m.Notice != nil {
			if !c.compress.Load() && !c.isSSE() {
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

// deliver writes m to c, compressed if c negotiated it.
func (s *shard) deliver(c *Client, m *bus.Message) {
	if c.isSSE() {
		if s.deliverSSE(c, m) { // sse.go
			s.delivered++
		}
		return
	}
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

// removeStream takes r out of its topic's list in O(1): the last record
// takes its place.
func (s *shard) removeStream(r *sub) {
	list := s.streams[r.t]
	i, last := r.pos, len(list)-1
	if last < 0 || list[i] != r {
		return // not in the list (cannot happen: the bus pairs each end with its start)
	}
	if int(i) != last {
		moved := list[last]
		list[i] = moved
		moved.pos = i
	}
	list[last] = nil
	if last == 0 {
		delete(s.streams, r.t)
	} else {
		s.streams[r.t] = list[:last]
	}
}

// removeLatest takes r out of its client's latest list.
func removeLatest(r *sub) {
	if r.c.latest == nil {
		return
	}
	l := *r.c.latest
	for i, x := range l {
		if x == r {
			copy(l[i:], l[i+1:])
			l[len(l)-1] = nil
			*r.c.latest = l[:len(l)-1]
			return
		}
	}
}

// appendLatest adds the "topics" of c's latest-mode subscriptions that
// changed since its last tick to an open tick payload, and closes it. Once
// the payload passes budget bytes, the remaining changes wait for the next
// tick, so that one tick stays well under the client's write cap.
func appendLatest(buf []byte, c *Client, budget int) []byte {
	open := false
	start := len(buf)
	latest := *c.latest
	off := int(c.visits) % len(latest) // rotate, so no topic starves behind the budget
	for j := range latest {
		l := latest[(off+j)%len(latest)]
		if !l.latest {
			continue // presence only
		}
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
	return append(appendPresence(buf, latest), '}')
}

// appendPresence adds the "presence" of the subscriptions in l that asked
// for it and whose topic's count changed since the client's last tick:
// one number per topic however many joins and leaves came in between.
func appendPresence(buf []byte, l []*sub) []byte {
	open := false
	for _, r := range l {
		if !r.presence {
			continue
		}
		n := r.t.Count()
		if n == r.shown() {
			continue
		}
		if open {
			buf = append(buf, ',')
		} else {
			buf = append(buf, `,"presence":{`...)
			open = true
		}
		buf = wire.AppendPresenceEntry(buf, r.t.Name(), n)
		r.setShown(n)
	}
	if open {
		buf = append(buf, '}')
	}
	return buf
}
