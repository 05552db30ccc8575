package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"wspush/server/internal/gateway"
	"wspush/server/wire"
)

// The SSE resume tests: clients that read /sse as EventSource does (the
// event stream parsed by the rules of the HTML standard's "Interpreting an
// event stream", with its last event ID), cut or dropped mid-stream and
// reconnected with Last-Event-ID or an explicit ?since=, checked with the
// restart tests' bookkeeping (resumer, restartRig): every acknowledged
// message exactly once, in order.

// specEvent is a dispatched event.
type specEvent struct {
	typ, data string
	lastID    string // the event source's last event ID string after it
	ownID     bool   // the event had an id field of its own
}

// specReader interprets an event stream as a user agent does.
type specReader struct {
	br       *bufio.Reader
	started  bool
	idBuf    string // the last event ID buffer
	lastID   string // the last event ID string (set at each dispatch)
	retry    int    // the reconnection time in ms; -1 until the stream sets it
	retries  int    // retry fields seen
	ownID    bool
	typeBuf  string
	data     strings.Builder
	hasData  bool
	comments int
}

func newSpecReader(r io.Reader) *specReader {
	return &specReader{br: bufio.NewReader(r), retry: -1}
}

// line reads one line, ended by CRLF, LF or CR.
func (r *specReader) line() (string, error) {
	var b []byte
	for {
		c, err := r.br.ReadByte()
		if err != nil {
			return "", err // an unfinished line is discarded
		}
		switch c {
		case '\n':
			return string(b), nil
		case '\r':
			if n, err := r.br.Peek(1); err == nil && n[0] == '\n' {
				_, _ = r.br.ReadByte()
			}
			return string(b), nil
		}
		b = append(b, c)
	}
}

// next returns the next dispatched event; an error ends the stream (an
// event not finished by a blank line is not dispatched).
func (r *specReader) next() (specEvent, error) {
	for {
		l, err := r.line()
		if err != nil {
			return specEvent{}, err
		}
		if !r.started {
			r.started = true
			l = strings.TrimPrefix(l, "\uFEFF")
		}
		if l == "" { // dispatch
			r.lastID = r.idBuf
			own := r.ownID
			r.ownID = false
			if !r.hasData {
				r.typeBuf = ""
				continue
			}
			ev := specEvent{typ: r.typeBuf, data: strings.TrimSuffix(r.data.String(), "\n"), lastID: r.lastID, ownID: own}
			if ev.typ == "" {
				ev.typ = "message"
			}
			r.typeBuf, r.hasData = "", false
			r.data.Reset()
			return ev, nil
		}
		if l[0] == ':' {
			r.comments++
			continue
		}
		field, value, ok := strings.Cut(l, ":")
		if ok {
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			r.typeBuf = value
		case "data":
			r.data.WriteString(value)
			r.data.WriteByte('\n')
			r.hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				r.idBuf, r.ownID = value, true
			}
		case "retry":
			if n, err := strconv.Atoi(value); err == nil && value != "" && strings.Trim(value, "0123456789") == "" {
				r.retry = n
				r.retries++
			}
		}
	}
}

// sseGet sends GET u with the extra header lines on conn and reads the
// response head; the body is the stream.
func sseGet(conn net.Conn, u *url.URL, header string) (*http.Response, error) {
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n" + header + "\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return nil, err
	}
	return http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodGet})
}

// sseResumer is a resumer over /sse: on every connection it asks for the
// three topics and resumes them all with its last event ID, sent as
// Last-Event-ID or, with since, as the since query parameter. It
// reconnects 20 ms after a stream ends (not after the retry time, which
// the restart's history would not outlast) and counts refusals, which an
// EventSource would not retry.
type sseResumer struct {
	*resumer
	url   func(k int) string // the k-th connection's URL
	since bool
	// Under resumer.mu:
	conns   int   // streams opened (200)
	refused []int // other statuses
}

func startSSEResumer(u func(k int) string, since bool) *sseResumer {
	c := &sseResumer{resumer: newResumer(""), url: u, since: since}
	go c.run()
	return c
}

// sseTopics is the query for the restart tests' topics.
var sseTopics = "topics=" + url.QueryEscape(strings.Join(restartTopics, ","))

func (c *sseResumer) run() {
	defer close(c.done)
	lastID := ""
	for k := 0; ; k++ {
		if !c.waitHold() {
			return
		}
		id, ok := c.stream(k, lastID)
		lastID = id
		if !ok {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// stream runs the k-th connection and returns the last event ID it ends
// with.
func (c *sseResumer) stream(k int, lastID string) (string, bool) {
	u, err := url.Parse(c.url(k))
	if err != nil {
		panic(err)
	}
	header := ""
	if lastID != "" {
		if c.since {
			q := u.Query()
			q.Set("since", lastID)
			u.RawQuery = q.Encode()
		} else {
			header = "Last-Event-ID: " + lastID + "\r\n"
		}
	}
	conn, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err != nil {
		return lastID, false
	}
	defer conn.Close()
	c.mu.Lock()
	c.conn, c.subbed = conn, 0
	c.mu.Unlock()
	select {
	case <-c.stop: // close may have run before conn was set
		return lastID, true
	default:
	}
	resp, err := sseGet(conn, u, header)
	if err != nil {
		return lastID, false
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		c.mu.Lock()
		c.refused = append(c.refused, resp.StatusCode)
		c.mu.Unlock()
		return lastID, false
	}
	c.mu.Lock()
	c.conns++
	c.mu.Unlock()
	rd := newSpecReader(resp.Body)
	for {
		ev, err := rd.next()
		if err != nil {
			return rd.lastID, true // what the stream's last dispatch left
		}
		c.event(ev)
	}
}

// event checks and records one event: its JSON, and its id against the
// positions the client has.
func (c *sseResumer) event(ev specEvent) {
	if ev.typ == "close" { // SSE's own: the close frame's code and reason
		var cl struct {
			Type   string
			Code   int
			Reason string
		}
		if err := json.Unmarshal([]byte(ev.data), &cl); err != nil || cl.Type != "close" || cl.Code != 1001 {
			c.mu.Lock()
			c.fail("close event %q: %v", ev.data, err)
			c.mu.Unlock()
		}
		return
	}
	var m wire.ServerMsg
	if err := wire.ParseServer([]byte(ev.data), &m); err != nil || m.Type != ev.typ {
		c.mu.Lock()
		c.fail("event %q with data %q: %v", ev.typ, ev.data, err)
		c.mu.Unlock()
		return
	}
	if m.Type == wire.TypeSubscribed && !ev.ownID {
		// An epoch notice (a cluster's; it carries no id).
		c.mu.Lock()
		if m.HistoryGone {
			c.gone[m.Topic]++
		} else if m.Seq != c.last[m.Topic] {
			c.fail("%s: epoch notice at seq %d after %d", m.Topic, m.Seq, c.last[m.Topic])
		}
		c.epoch[m.Topic], c.last[m.Topic] = m.Epoch, m.Seq
		c.mu.Unlock()
	} else {
		c.handle(m)
	}
	if !ev.ownID {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range strings.Split(ev.lastID, ",") {
		i := strings.LastIndexByte(e, ':')
		j := strings.LastIndexByte(e[:max(i, 0)], ':')
		if j < 0 {
			c.fail("id %q: entry %q", ev.lastID, e)
			return
		}
		topic, epoch, seq := e[:j], e[j+1:i], e[i+1:]
		if epoch != c.epoch[topic] || seq != strconv.FormatUint(c.last[topic], 10) {
			c.fail("%s event: id %q has %s at %s:%s; the stream had it at %s:%d", m.Type, ev.lastID, topic, epoch, seq, c.epoch[topic], c.last[topic])
		}
	}
}

// cut closes the client's connection; it reconnects.
func (c *sseResumer) cut() {
	c.mu.Lock()
	if c.conn != nil {
		_ = c.conn.Close()
	}
	c.mu.Unlock()
}

func (c *sseResumer) streams() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conns
}

// sseRestartRig is the restart rig with SSE clients that resume with
// Last-Event-ID, as an EventSource does after the drain.
func sseRestartRig(t *testing.T) (*restartRig, *restartNode, []*sseResumer) {
	t.Helper()
	var clients []*sseResumer
	rig, n := newRestartRigOf(t, func(addr string) *resumer {
		c := startSSEResumer(func(int) string { return "http://" + addr + "/sse?" + sseTopics }, false)
		clients = append(clients, c)
		return c.resumer
	})
	return rig, n, clients
}

// SIGTERM mid-stream, start again: SSE clients resume with Last-Event-ID
// and get every acknowledged message exactly once, in order, with no
// history_gone.
func TestSSERestartSIGTERMResumesEverything(t *testing.T) {
	rig, n, clients := sseRestartRig(t)
	restartSIGTERM(t, rig, n)
	for i, c := range clients {
		if s := c.streams(); s < 2 {
			t.Errorf("client %d: %d streams, want a resumed one", i, s)
		}
	}
}

// A graceful restart, then SIGKILL mid-stream: the third run has lost the
// state, so every SSE client gets history_gone with a new epoch in every
// topic, and before it everything; never a wrong replay.
func TestSSERestartSIGKILLNeverWrongReplay(t *testing.T) {
	rig, n, clients := sseRestartRig(t)
	restartSIGKILL(t, rig, n)
	for i, c := range clients {
		c.mu.Lock()
		for _, topic := range restartTopics {
			if c.gone[topic] != 1 {
				t.Errorf("client %d, %s: %d history_gone, want 1 (after the SIGKILL)", i, topic, c.gone[topic])
			}
		}
		if c.conns < 3 {
			t.Errorf("client %d: %d streams, want one per run", i, c.conns)
		}
		c.mu.Unlock()
	}
}

// Three nodes joined by a real nats-server: SSE clients start on node A,
// publishes go to node B at a steady rate, and each client's stream is cut
// four times, every reconnect going to the next node (B, C, A, B), half
// with Last-Event-ID and half with ?since=: every acknowledged message
// arrives exactly once, in order, with no history_gone.
func TestSSEClusterResumeOnAnotherNode(t *testing.T) {
	ns := startNATS(t, t.TempDir(), -1)
	nodes := []*testServer{startClusterNode(t, ns), startClusterNode(t, ns), startClusterNode(t, ns)}
	for _, n := range nodes {
		eventually(t, 10*time.Second, "node healthy", func() bool { return healthy(n) })
	}
	rig := &restartRig{}
	var clients []*sseResumer
	for i := range 12 {
		c := startSSEResumer(func(k int) string { return nodes[k%len(nodes)].sse("?" + sseTopics) }, i%2 == 1)
		clients = append(clients, c)
		rig.clients = append(rig.clients, c.resumer)
	}
	t.Cleanup(func() {
		for _, c := range clients {
			c.close()
		}
	})
	eventually(t, 15*time.Second, "clients subscribed", func() bool {
		for _, c := range clients {
			if !c.subscribed() {
				return false
			}
		}
		return true
	})
	rig.pub = startPublisher(strings.TrimPrefix(nodes[1].admin, "http://"))
	t.Cleanup(func() {
		select {
		case <-rig.pub.stop:
		default:
			close(rig.pub.stop)
		}
		<-rig.pub.done
	})
	const cuts = 4
	for round := 1; round <= cuts; round++ {
		rig.pub.waitAcked(t, 60)
		for _, c := range clients {
			c.cut()
			time.Sleep(5 * time.Millisecond) // spread over the stream
		}
		eventually(t, 15*time.Second, "clients reconnected", func() bool {
			for _, c := range clients {
				if c.streams() < round+1 || !c.subscribed() {
					return false
				}
			}
			return true
		})
	}
	rig.pub.waitAcked(t, 60)
	rig.settle(t)
	rig.checkConsistent(t)
	for i, c := range clients {
		c.mu.Lock()
		if c.conns != cuts+1 || len(c.refused) > 0 {
			t.Errorf("client %d: %d streams (want %d), refused %v", i, c.conns, cuts+1, c.refused)
		}
		for _, topic := range restartTopics {
			if c.gone[topic] != 0 {
				t.Errorf("client %d (since %v), %s: history_gone", i, c.since, topic)
			}
		}
		c.mu.Unlock()
		for _, topic := range restartTopics {
			rig.checkAll(t, i, topic)
		}
	}
}

// TestSSERetrySpreadsReconnects: every stream begins with a retry field
// drawn from the window docs/protocol.md states (the gateway's
// SSERetryMin and SSERetryWindow), and the values differ from stream to
// stream, so that EventSources drained together come back spread out.
func TestSSERetrySpreadsReconnects(t *testing.T) {
	s := startServer(t, "-push-interval", "0", "-drain-rate", "10000")
	const n = 40
	type stream struct {
		conn net.Conn
		rd   *specReader
	}
	var streams []stream
	for range n {
		u, _ := url.Parse(s.sse("?topics=a"))
		conn, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		resp, err := sseGet(conn, u, "")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /sse: %v %v", resp, err)
		}
		st := stream{conn, newSpecReader(resp.Body)}
		if ev, err := st.rd.next(); err != nil || ev.typ != wire.TypeWelcome {
			t.Fatalf("first event %+v, %v", ev, err)
		}
		streams = append(streams, st)
	}
	lo, hi := gateway.SSERetryMin, gateway.SSERetryMin+gateway.SSERetryWindow-1
	doc := fmt.Sprintf("`retry: <ms>` — a value drawn at random from %d–%d ms for each stream", lo, hi)
	if b, err := os.ReadFile("../docs/protocol.md"); err != nil || !bytes.Contains(b, []byte(doc)) {
		t.Errorf("docs/protocol.md does not say %q", doc)
	}
	// The drain: each stream gets its close event and ends; an EventSource
	// would reconnect its retry later.
	go s.n.shutdown(s.cfg)
	var at []time.Time
	seen := map[int]bool{}
	for i, st := range streams {
		if st.rd.retries != 1 || st.rd.retry < lo || st.rd.retry > hi {
			t.Errorf("stream %d: %d retry fields, %d ms; want one in %d–%d", i, st.rd.retries, st.rd.retry, lo, hi)
		}
		seen[st.rd.retry] = true
		var last specEvent
		var err error
		for err == nil {
			var ev specEvent
			if ev, err = st.rd.next(); err == nil {
				last = ev
			}
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("stream %d ended with %v", i, err)
		}
		if last.typ != "close" || !strings.Contains(last.data, `"code":1001`) {
			t.Errorf("stream %d: last event %+v, want close 1001", i, last)
		}
		at = append(at, time.Now().Add(time.Duration(st.rd.retry)*time.Millisecond))
	}
	first, last := at[0], at[0]
	for _, a := range at {
		if a.Before(first) {
			first = a
		}
		if a.After(last) {
			last = a
		}
	}
	if len(seen) < n/2 || last.Sub(first) < 2*time.Second {
		t.Errorf("%d distinct retry values; reconnects due over %v; want them spread over the %d ms window", len(seen), last.Sub(first), gateway.SSERetryWindow)
	}
}
