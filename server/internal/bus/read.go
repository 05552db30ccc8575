package bus

// This file reads a topic's history for the server API (GET /v1/history).

// HistoryQuery asks for a topic's kept messages after Since (all kept
// messages when HasSince is false), at most Limit of them.
type HistoryQuery struct {
	Since    uint64
	HasSince bool
	// Epoch, when set, is the incarnation Since belongs to; another
	// epoch means the messages after Since are gone.
	Epoch string
	Limit int
}

// HistoryPage is the answer to a HistoryQuery.
type HistoryPage struct {
	Epoch string
	Last  uint64 // the topic's last seq
	// Messages are in seq order: those after Since, or, when Gone, every
	// kept message; at most Limit.
	Messages []*Message
	// Gone: the messages after Since are not all kept any more (evicted,
	// expired, another epoch, or Since is past Last); Messages start at the
	// oldest kept one, as a resume over WebSocket would get history_gone.
	Gone bool
	// More: there are kept messages after the last one returned.
	More bool
}

// History reads topic's history; false when there is no such topic.
func (b *Bus) History(topic string, q HistoryQuery) (HistoryPage, bool) {
	t, _ := b.lock(topic, false)
	if t == nil {
		return HistoryPage{}, false
	}
	defer t.mu.Unlock()
	t.trim() // entries evicted bus-wide are gone
	p := HistoryPage{Epoch: t.epoch, Last: t.seq}
	cutoff := b.now().UnixNano() - int64(b.cfg.HistoryTTL)
	first := 0 // index of the oldest kept (unexpired) message
	for first < t.n && t.hist[(t.head+first)%len(t.hist)].TS < cutoff {
		first++
	}
	if q.HasSince {
		oldest := t.seq + 1 // the oldest kept seq; past Last if none is kept
		if first < t.n {
			oldest = t.hist[(t.head+first)%len(t.hist)].Seq
		}
		p.Gone = (q.Epoch != "" && q.Epoch != t.epoch) || q.Since > t.seq || q.Since+1 < oldest
	}
	for i := first; i < t.n; i++ {
		m := t.hist[(t.head+i)%len(t.hist)]
		if q.HasSince && !p.Gone && m.Seq <= q.Since {
			continue
		}
		if len(p.Messages) == q.Limit {
			p.More = true
			break
		}
		p.Messages = append(p.Messages, m)
	}
	return p, true
}
