package hub

import "wspush/server/internal/bus"

// Notify writes frame, a whole WebSocket frame (a presence event), to the
// stream-mode subscribers of t on this node that subscribed with presence.
// It queues the frame on every shard (one inbox item each) and returns at
// once; it may be called from any goroutine.
func (h *Hub) Notify(t *bus.Topic, frame []byte) {
	m := &bus.Message{Topic: t, Frame: frame}
	for _, s := range h.shards {
		s.enqueue(item{kind: itemPresence, m: m}, false)
	}
}

// handlePresence writes a presence event to the topic's stream
// subscribers on this shard that asked for presence.
func (s *shard) handlePresence(m *bus.Message) {
	for _, r := range s.streams[m.Topic] {
		if r.presence {
			s.send(r.c, m.Frame)
		}
	}
}
