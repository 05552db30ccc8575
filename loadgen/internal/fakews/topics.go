package fakews

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"time"

	"wspush/server/wire"
)

// topic is one topic's log and subscribers; Server.topicMu guards it.
type topic struct {
	name string
	log  []int64 // publish time (Unix ns) of seq i+1
	subs map[*subscriber]bool
}

// subscriber is one connection's writer.
type subscriber struct {
	write func([]byte) bool
	conn  net.Conn
}

const epoch = `"e1"`

// Publish appends one message to topic (created on first use), sends it
// to every subscriber and returns its seq.
func (s *Server) Publish(name string) uint64 {
	s.topicMu.Lock()
	defer s.topicMu.Unlock()
	t := s.topic(name)
	t.log = append(t.log, time.Now().UnixNano())
	n := uint64(len(t.log))
	frame := msgFrame(t, n)
	for sb := range t.subs {
		sb.write(frame)
	}
	return n
}

// Hangup closes up to n upgraded connections without a close frame, as a
// server (or the network) that drops them; it returns how many it closed.
func (s *Server) Hangup(n int) int {
	s.topicMu.Lock()
	var victims []*subscriber
	for _, t := range s.topics {
		for sb := range t.subs {
			if len(victims) < n {
				victims = append(victims, sb)
				delete(t.subs, sb)
			}
		}
	}
	s.topicMu.Unlock()
	for _, sb := range victims {
		if sb.conn != nil {
			_ = sb.conn.Close()
		}
	}
	return len(victims)
}

// AdminHandler serves POST /v1/publish {"topic":T,...} → {"topic":T,"seq":N},
// like wspush's admin API.
func (s *Server) AdminHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Topic string `json:"topic"`
		}
		if r.URL.Path != "/v1/publish" || json.NewDecoder(r.Body).Decode(&req) != nil || req.Topic == "" {
			http.Error(w, "bad publish", http.StatusBadRequest)
			return
		}
		n := s.Publish(req.Topic)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"topic":` + strconv.Quote(req.Topic) + `,"seq":` + strconv.FormatUint(n, 10) + `}`))
	})
}

func (s *Server) topic(name string) *topic {
	t := s.topics[name]
	if t == nil {
		t = &topic{name: name, subs: map[*subscriber]bool{}}
		s.topics[name] = t
	}
	return t
}

// subscribe answers {"type":"sub","topic":T[,"since":N,"epoch":E]}: a
// subscribed reply with the topic's seq, then (with since) every message
// after since, then the live ones, all under topicMu so that none is
// missed or sent twice.
func (s *Server) subscribe(p []byte, sb *subscriber) {
	var req struct {
		Type     string  `json:"type"`
		Topic    string  `json:"topic"`
		Since    *uint64 `json:"since"`
		Presence bool    `json:"presence"`
	}
	if json.Unmarshal(p, &req) != nil || req.Type != "sub" || req.Topic == "" {
		return
	}
	if req.Presence {
		s.PresenceSubs.Add(1)
	}
	s.topicMu.Lock()
	defer s.topicMu.Unlock()
	t := s.topic(req.Topic)
	n := uint64(len(t.log))
	reply := `{"type":"subscribed","topic":` + strconv.Quote(t.name) + `,"mode":"stream","seq":` +
		strconv.FormatUint(n, 10) + `,"epoch":` + epoch + `}`
	if !sb.write(wire.AppendFrame(nil, wire.OpText, []byte(reply))) {
		return
	}
	if req.Since != nil {
		for i := *req.Since + 1; i <= n; i++ {
			sb.write(msgFrame(t, i))
		}
	}
	t.subs[sb] = true
}

func (s *Server) unsubscribe(sb *subscriber) {
	s.topicMu.Lock()
	defer s.topicMu.Unlock()
	for _, t := range s.topics {
		delete(t.subs, sb)
	}
}

func msgFrame(t *topic, n uint64) []byte {
	b := []byte(`{"type":"msg","topic":`)
	b = strconv.AppendQuote(b, t.name)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, n, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, t.log[n-1], 10)
	b = append(b, `,"data":{}}`...)
	return wire.AppendFrame(nil, wire.OpText, b)
}
