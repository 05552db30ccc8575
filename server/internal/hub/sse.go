package hub

import (
	"bytes"
	"sync"

	"wspush/server/internal/bus"
	"wspush/server/wire"
)

// This file is the hub's side of SSE clients (Server-Sent Events, the
// gateway's /sse): they live on the same shards and wheels as WebSocket
// clients and are sent the same JSON, each message as one event
// (wire/sse.go). What differs:
//
//   - Frames written with Send are turned into events (a ping into the
//     heartbeat comment). A shared message (topic message, broadcast) is
//     encoded as an event once per shard (shard.event) and written to each
//     SSE client followed by the client's own id line: its position in
//     every stream topic, which the shard keeps (sseConn.pos) so that a
//     reconnect's Last-Event-ID resumes them all. The event is not cached
//     in the bus.Message: that would add its bytes and a field to every
//     message in history, SSE clients or not; a shard encodes each message
//     at most once, right before writing it to all its SSE subscribers.
//   - The idle timeout does not apply (SSE clients never send); liveness
//     is a write that fails or passes the unsent cap.
//   - CloseWith writes a "close" event and shuts the socket down at once:
//     an SSE client does not answer a close.

// sseConn is an SSE client's socket with its stream positions.
type sseConn struct {
	Conn
	pos []ssePos // owned by the client's shard goroutine
}

// ssePos is the last message of topic t the client was sent (or where its
// subscription began).
type ssePos struct {
	t     *bus.Topic
	epoch string
	seq   uint64
}

// NewSSEClient returns a client for an SSE stream on conn, not yet
// registered (see NewClient).
func (h *Hub) NewSSEClient(conn Conn) *Client {
	return h.NewClient(&sseConn{Conn: conn})
}

// SSE reports whether c is an SSE client.
func (c *Client) SSE() bool { return c.isSSE() }

// isSSE tells an SSE client by its socket's type (a compare of the
// interface's type word: no field, so that a Client stays 128 bytes).
func (c *Client) isSSE() bool {
	_, ok := c.conn.(*sseConn)
	return ok
}

// eventBufs are scratch buffers for the events written off the shard's
// own paths (replies, ticks, heartbeats), from any goroutine.
var eventBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// sendAsEvent writes the server's text frame as an event (a ping frame as
// the heartbeat comment; other control frames mean nothing here).
func (c *Client) sendAsEvent(frame []byte) bool {
	if len(frame) < 2 {
		return false
	}
	switch frame[0] & 0x0F {
	case wire.OpText:
	case wire.OpPing:
		return c.write(wire.SSEHeartbeat)
	default:
		return true
	}
	p := wire.Payload(frame)
	pb := eventBufs.Get().(*[]byte)
	b := wire.AppendEvent((*pb)[:0], wire.EventType(p), p)
	ok := c.write(b)
	if cap(b) <= 64<<10 {
		*pb = b[:0]
		eventBufs.Put(pb)
	}
	return ok
}

// closeSSE writes a close event with r's code and text, then shuts the
// socket down for its poller to close (state is closing already).
func (c *Client) closeSSE(r Reason) {
	p := []byte(`{"type":"close","code":`)
	p = appendUint(p, uint64(r.code))
	p = append(p, `,"reason":`...)
	p = wire.AppendString(p, r.text)
	p = append(p, '}')
	ev := wire.AppendEvent(nil, "close", p)
	c.unsent.Add(int64(len(ev)))
	if err := c.put(ev); err != nil {
		c.unsent.Add(-int64(len(ev)))
	}
	_ = c.conn.Close()
}

func appendUint(b []byte, v uint64) []byte {
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}

// sseStart records where an SSE client's stream subscription to t begins.
func (s *shard) sseStart(c *Client, t *bus.Topic, epoch string, seq uint64) {
	sc := c.conn.(*sseConn)
	for i := range sc.pos {
		if sc.pos[i].t == t {
			sc.pos[i].epoch, sc.pos[i].seq = epoch, seq
			return
		}
	}
	sc.pos = append(sc.pos, ssePos{t: t, epoch: epoch, seq: seq})
}

// sseEnd forgets an SSE client's position in t.
func (s *shard) sseEnd(c *Client, t *bus.Topic) {
	sc := c.conn.(*sseConn)
	for i := range sc.pos {
		if sc.pos[i].t == t {
			sc.pos = append(sc.pos[:i], sc.pos[i+1:]...)
			if len(sc.pos) == 0 {
				sc.pos = nil
			}
			return
		}
	}
}

// appendID appends c's id line: its position in every stream topic.
func appendID(b []byte, c *Client) []byte {
	sc := c.conn.(*sseConn)
	b = append(b, "id: "...)
	for i, p := range sc.pos {
		if i > 0 {
			b = append(b, ',')
		}
		b = wire.AppendPosition(b, p.t.Name(), p.epoch, p.seq)
	}
	return append(b, '\n')
}

// event returns m as an SSE event without its id line and final blank
// line, encoded once per shard and message: fan-out asks for the same
// message for each of its subscribers in a row.
func (s *shard) event(m *bus.Message) []byte {
	if s.evMsg != m {
		s.ev = wire.AppendEventData(wire.AppendEventHead(s.ev[:0], wire.TypeMsg), wire.Payload(m.Frame))
		s.evMsg, s.evEpoch = m, ""
		if m.Notice != nil { // a new epoch begins with m (bus.Apply)
			s.evEpoch = noticeEpoch(wire.Payload(m.Notice))
		}
	}
	return s.ev
}

// noticeEpoch reads the epoch of a subscribed notice (wire.AppendSubscribed).
func noticeEpoch(p []byte) string {
	const key = `"epoch":"`
	i := bytes.Index(p, []byte(key))
	if i < 0 {
		return ""
	}
	p = p[i+len(key):]
	if j := bytes.IndexByte(p, '"'); j >= 0 {
		return string(p[:j])
	}
	return ""
}

// advance moves c's position in m's topic to m: same epoch as before
// unless m starts a new one.
func (s *shard) advance(c *Client, m *bus.Message) {
	sc := c.conn.(*sseConn)
	for i := range sc.pos {
		if p := &sc.pos[i]; p.t == m.Topic {
			if s.evEpoch != "" {
				p.epoch = s.evEpoch
			}
			p.seq = m.Seq
			return
		}
	}
	epoch := s.evEpoch
	if epoch == "" {
		epoch = m.Topic.Epoch() // not reached: a subscription starts with its position
	}
	sc.pos = append(sc.pos, ssePos{t: m.Topic, epoch: epoch, seq: m.Seq})
}

// deliverSSE writes m to an SSE client: the event m encoded once per
// shard, then the client's id line for a topic message (its position
// there advanced to m).
func (s *shard) deliverSSE(c *Client, m *bus.Message) bool {
	b := append(s.ebuf[:0], s.event(m)...)
	if m.Topic != nil {
		s.advance(c, m)
		b = appendID(b, c)
	}
	b = append(b, '\n')
	s.ebuf = b
	if c.write(b) {
		s.count(len(b))
		return true
	}
	return false
}

// replySSE writes a reply frame (subscribed, unsubscribed) to an SSE
// client as an event with, when id is set, its id line.
func (s *shard) replySSE(c *Client, frame []byte, id bool) {
	if frame == nil {
		return
	}
	p := wire.Payload(frame)
	b := wire.AppendEventHead(s.ebuf[:0], wire.EventType(p))
	if id && len(c.conn.(*sseConn).pos) > 0 {
		b = appendID(b, c)
	}
	b = append(wire.AppendEventData(b, p), '\n')
	s.ebuf = b
	if c.write(b) {
		s.count(len(b))
	}
}

// subSSE starts an SSE client's subscription: the subscribed event (with
// the client's positions, this topic's at where its replay begins), then
// the replay, each message with its id.
func (s *shard) subSSE(it *item) {
	r := it.sub
	c := r.c
	if !r.latest {
		s.sseStart(c, r.t, it.epoch, it.last-uint64(len(it.replay)))
	}
	s.replySSE(c, it.reply, !r.latest)
	for _, m := range it.replay {
		s.deliverSSE(c, m)
	}
}

// tickSSE writes a plain tick (no latest values or presence counts, so no
// line break in its JSON: strings are escaped) as an event, encoded
// straight into the shard's scratch; ticks with values go through Send.
func (s *shard) tickSSE(c *Client, dueNs int64) {
	b := append(wire.AppendTick(append(s.ebuf[:0], "event: tick\ndata: "...), c.seq, dueNs, s.h.cfg.PushText), "\n\n"...)
	s.ebuf = b
	if c.write(b) {
		s.pushes++
		s.frames++
		s.bytes += uint64(len(b))
	}
}
