package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// ServerMsg is a decoded server → client frame, for clients such as wsload
// and the tests. Fields a type does not carry are left zero.
type ServerMsg struct {
	Type string `json:"type"`
	// ID: the connection id (welcome) or the echoed correlation id (pong,
	// error), as JSON text.
	ID         json.RawMessage `json:"id,omitempty"`
	IntervalMS int64           `json:"interval_ms,omitempty"`
	FirstDue   int64           `json:"first_due,omitempty"` // welcome: when tick 1 is due (Unix ns)
	Text       string          `json:"text,omitempty"`
	Seq        uint64          `json:"seq,omitempty"`
	Due        int64           `json:"due,omitempty"`
	Code       string          `json:"code,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	// Topics (msg, subscribed, unsubscribed, published, and ticks that
	// carry latest values).
	Topic       string                 `json:"topic,omitempty"`
	Mode        string                 `json:"mode,omitempty"`
	Epoch       string                 `json:"epoch,omitempty"`
	HistoryGone bool                   `json:"history_gone,omitempty"`
	TS          int64                  `json:"ts,omitempty"`
	Data        json.RawMessage        `json:"data,omitempty"`
	Topics      map[string]LatestValue `json:"topics,omitempty"`
	// Presence: a tick's subscriber counts of the topics subscribed with
	// "presence":true whose count changed since the client's last tick.
	Presence map[string]int64 `json:"presence,omitempty"`
	// Join and Leave (presence): members that joined and left the topic.
	Join  []Member `json:"join,omitempty"`
	Leave []Member `json:"leave,omitempty"`
	// Members (subscribed with presence to a member topic): the list.
	Members []Member `json:"members,omitempty"`
}

// LatestValue is a latest-mode topic's newest value, carried by a tick.
type LatestValue struct {
	Seq  uint64          `json:"seq"`
	Data json.RawMessage `json:"data"`
}

var tickPrefix = []byte(`{"type":"tick","seq":`)

// ParseServer decodes one server frame into m (reset first). Plain ticks,
// the bulk of the traffic, are decoded by a fast path that allocates
// nothing; everything else goes through encoding/json.
func ParseServer(b []byte, m *ServerMsg) error {
	*m = ServerMsg{}
	if bytes.HasPrefix(b, tickPrefix) {
		if seq, due, ok := parsePlainTick(b[len(tickPrefix):]); ok {
			m.Type, m.Seq, m.Due = TypeTick, seq, due
			return nil
		}
	}
	if err := json.Unmarshal(b, m); err != nil {
		return fmt.Errorf("wire: bad server frame: %w", err)
	}
	if m.Type == "" {
		return fmt.Errorf("wire: bad server frame: no type")
	}
	return nil
}

// parsePlainTick parses `SEQ,"due":DUE}` exactly; anything else (a text
// field, spaces) is left to the general decoder.
func parsePlainTick(b []byte) (seq uint64, due int64, ok bool) {
	seq, b, ok = parseUint(b)
	if !ok || !bytes.HasPrefix(b, []byte(`,"due":`)) {
		return 0, 0, false
	}
	b = b[len(`,"due":`):]
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, b, ok := parseUint(b)
	if !ok || len(b) != 1 || b[0] != '}' || u > 1<<63-1 {
		return 0, 0, false
	}
	due = int64(u)
	if neg {
		due = -due
	}
	return seq, due, true
}

func parseUint(b []byte) (uint64, []byte, bool) {
	var n uint64
	i := 0
	for ; i < len(b) && i < 20 && b[i] >= '0' && b[i] <= '9'; i++ {
		d := uint64(b[i] - '0')
		if n > (1<<64-1-d)/10 {
			return 0, b, false
		}
		n = n*10 + d
	}
	if i == 0 || i == 20 {
		return 0, b, false
	}
	return n, b[i:], true
}
