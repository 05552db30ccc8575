package gateway

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"

	"wspush/server/internal/auth"
	"wspush/server/internal/bus"
	"wspush/server/internal/hub"
	"wspush/server/internal/metrics"
	"wspush/server/wire"
)

// This file is the SSE transport: GET /sse streams the same messages as
// /ws as Server-Sent Events (docs/protocol.md "SSE"). The handler runs the
// same checks as an upgrade (origin, accept rate, JWT, per-IP and
// connection caps), hijacks the connection from nbio's HTTP parser, writes
// the response head itself (close-delimited: no length, no chunking) and
// hands the socket to the hub as an SSE client: same shard, same wheel, no
// goroutine or timer of its own. nbio then gives the bytes the client
// sends to the session (sseSession.Parse), which drops them, and its close
// to sseSession.CloseAndClean, on the executor, as for a WebSocket. With a
// connect hook the head waits for the backend's answer (ssehooks.go).
//
// nbio releases the request and response when the handler returns, so
// everything kept is copied first.

// SSE retry: EventSource waits this long before it reconnects; each stream
// gets a value drawn from the window, so that the clients of a drained
// server do not all come back at once.
const (
	SSERetryMin    = 1000 // ms
	SSERetryWindow = 4000 // ms
	// sseMaxDiscard is how many bytes an SSE client may send (it has no
	// reason to) before it is closed.
	sseMaxDiscard = 4096
)

// sseSession is an SSE connection's state: its nbio session, in place of
// the HTTP parser, from the hijack on.
type sseSession struct {
	g       *Gateway
	conn    net.Conn // what nbio reads through: *nbio.Conn or *tls.Conn
	out     hub.Conn // what the hub writes to and closes (the head is written to it too)
	cl      *hub.Client
	grant   *auth.Grant // nil with authentication off
	hk      *inOrder    // with a connect or subscribe hook: its closed flag orders the answers with the close (ssehooks.go)
	ip      netip.Addr
	origin  string // the Origin the head allows (CORS), or ""
	dropped int    // bytes the client sent; the poller's
}

// UnderlayerConn, Parse and CloseAndClean make the session nbio's
// ParserCloser for the connection.
func (s *sseSession) UnderlayerConn() net.Conn { return s.conn }

// Parse drops what the client sends; over sseMaxDiscard bytes nbio closes
// the connection.
func (s *sseSession) Parse(data []byte) error {
	s.dropped += len(data)
	if s.dropped > sseMaxDiscard {
		return errors.New("gateway: sse client sent more than 4096 bytes")
	}
	return nil
}

// CloseAndClean runs on the executor when the socket has closed.
func (s *sseSession) CloseAndClean(err error) { s.g.sseClosed(s, err) }

// sseRequest is a parsed /sse query.
type sseRequest struct {
	topics []string
	latest bool
	resume map[string]bus.Resume
}

func badSSE(format string, args ...any) error {
	return fmt.Errorf("sse: "+format, args...)
}

// parseSSE reads topics, mode, since and epoch from the query and the
// Last-Event-ID header; every string kept is a copy.
func (g *Gateway) parseSSE(r *http.Request) (*sseRequest, error) {
	q := r.URL.Query()
	req := &sseRequest{resume: map[string]bus.Resume{}}
	switch m := q.Get("mode"); m {
	case "", wire.ModeStream:
	case wire.ModeLatest:
		if g.hub.PushInterval() == 0 {
			return nil, badSSE("latest mode rides on ticks, and this server sends none (-push-interval 0)")
		}
		req.latest = true
	default:
		return nil, badSSE("mode must be %q or %q, not %q", wire.ModeStream, wire.ModeLatest, m)
	}
	seen := map[string]bool{}
	for _, v := range q["topics"] {
		for _, t := range strings.Split(v, ",") {
			if t == "" {
				continue
			}
			if err := wire.ValidTopic(t); err != nil {
				return nil, badSSE("topic %q: %v", truncateTopic(t), err)
			}
			if !seen[t] {
				seen[t] = true
				req.topics = append(req.topics, strings.Clone(t))
			}
		}
	}
	if len(req.topics) > g.cfg.MaxSubs {
		return nil, badSSE("%d topics; at most %d", len(req.topics), g.cfg.MaxSubs)
	}
	if s := q.Get("since"); s != "" {
		if strings.Contains(s, ":") { // positions, as in an event id
			ps, err := wire.ParseEventID(s)
			if err != nil {
				return nil, badSSE("since: %v", err)
			}
			req.setResume(ps)
		} else {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return nil, badSSE("since must be a seq number or topic:epoch:seq positions, not %q", truncateTopic(s))
			}
			e := q.Get("epoch")
			if e == "" || len(e) > bus.MaxEpochBytes {
				return nil, badSSE("since needs the epoch it counts in (epoch=, at most %d bytes)", bus.MaxEpochBytes)
			}
			for _, t := range req.topics {
				req.resume[t] = bus.Resume{Since: n, Epoch: strings.Clone(e), HasSince: true}
			}
		}
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" { // a reconnect: it wins over the URL's since
		ps, err := wire.ParseEventID(id)
		if err != nil {
			return nil, badSSE("Last-Event-ID: %v", err)
		}
		req.setResume(ps)
	}
	return req, nil
}

func (req *sseRequest) setResume(ps []wire.Position) {
	for _, p := range ps {
		req.resume[p.Topic] = bus.Resume{Since: p.Seq, Epoch: strings.Clone(p.Epoch), HasSince: true}
	}
}

func truncateTopic(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// serveSSE is GET /sse.
func (g *Gateway) serveSSE(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "sse: use GET", http.StatusMethodNotAllowed)
		return
	}
	if !g.acc.checkOrigin(r) {
		g.m.UpgradeFailed(metrics.UpgradeBadOrigin)
		http.Error(w, "sse: origin not allowed", http.StatusForbidden)
		return
	}
	origin := corsOrigin(r)
	if origin != "" { // sseedge.go: every answer from here on may be read by the page
		setCORS(w.Header(), origin)
	}
	if g.draining.Load() {
		g.m.UpgradeFailed(metrics.UpgradeShuttingDown)
		if wantsStream(r) {
			sseRefuseStream(w, r, wire.CloseGoingAway, hub.CloseShutdown.Text())
			return
		}
		w.Header().Set("Retry-After", "1")
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	req, err := g.parseSSE(r)
	if err != nil {
		g.m.UpgradeFailed(metrics.UpgradeBadHandshake)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// An EventSource gives up for good on any status but 200: a transient
	// refusal (admit's accept rate and per-IP cap, reserve's -max-conns)
	// goes to it as a stream that closes at once (sseedge.go).
	aw := w
	var held *heldAnswer
	if wantsStream(r) {
		held = &heldAnswer{w: w, r: r}
		aw = held
	}
	grant, ip, ok := g.admit(aw, r)
	if !ok {
		held.send()
		return
	}
	if grant != nil {
		for _, t := range req.topics {
			if !grant.MaySubscribe(t) {
				g.acc.perIP.Release(ip)
				g.m.UpgradeFailed(metrics.UpgradeUnauthorized)
				http.Error(w, "sse: your token does not allow subscribing to "+t, http.StatusForbidden)
				return
			}
		}
	}
	if !g.reserve(aw, ip) {
		held.send()
		return
	}
	s, err := g.hijackSSE(w)
	if err != nil { // nothing can be answered on a hijacked connection
		g.reserved.Add(-1)
		g.acc.perIP.Release(ip)
		g.m.UpgradeFailed(metrics.UpgradeBadHandshake)
		return
	}
	s.ip, s.origin = ip, origin
	if grant == nil && g.hooks.connect != nil {
		g.sseConnectHook(s, r, req) // ssehooks.go: the stream starts when the backend accepts
		return
	}
	g.sseHead(s)
	g.sseAdmit(s, grant, req)
	if g.hooks.subscribe != nil {
		g.sseSubscribeHook(s, req, 0) // ssehooks.go
	}
}

// sseAdmit makes a stream whose head is written a hub client with grant,
// welcomes it and, without a subscribe hook, subscribes it to its topics.
func (g *Gateway) sseAdmit(s *sseSession, grant *auth.Grant, req *sseRequest) {
	if grant != nil {
		s.grant = grant
		g.acc.users.Add(grant.Sub)
		g.acc.byUser.add(grant.Sub, s.cl)
		s.cl.SetExpiry(grant.Expiry)
	}
	g.welcome(s.cl)
	if g.hooks.subscribe != nil {
		return
	}
	for _, t := range req.topics {
		g.sseSub(s, req, t, nil)
	}
}

// sseSub subscribes the stream to topic t of its request, with the
// subscribe hook's data if any; an error event about t has t as its id.
func (g *Gateway) sseSub(s *sseSession, req *sseRequest, t string, data []byte) {
	sub := bus.Subscription{Subscriber: s.cl, Topic: t, Latest: req.latest, Resume: req.resume[t], Data: data}
	if s.grant != nil {
		sub.User = s.grant.Sub
	}
	if err := g.bus.Subscribe(sub); err != nil {
		g.fail(s.cl, wire.CodeLimit, err.Error(), topicID(t))
	}
}

// topicID is the id of an error event about one of the request's topics:
// the topic as a JSON string (an SSE client has no ids of its own).
func topicID(t string) []byte { return wire.AppendString(nil, t) }

// sseHead is the response head without its CORS lines and its end (the
// empty line); the retry field follows the head.
const sseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" +
	"X-Accel-Buffering: no\r\nConnection: close\r\n"

// hijackSSE takes the connection from nbio's HTTP parser and makes it an
// SSE client, not yet registered and with no response written (sseHead).
func (g *Gateway) hijackSSE(w http.ResponseWriter) (*sseSession, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, errors.New("response cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return nil, err
	}
	// nbc is the socket, conn what nbio reads through, hc what the hub
	// writes to and closes (only the poller closes: pollerclose.go).
	var nbc *nbio.Conn
	var hc hub.Conn
	switch c := underlying(conn).(type) {
	case *nbio.Conn:
		nbc, hc, conn = c, pollerConn{c}, c
	case *tls.Conn:
		nbc, _ = c.Conn().(*nbio.Conn)
		hc, conn = pollerTLSConn{c}, c
	}
	if nbc == nil {
		_ = conn.Close()
		return nil, errors.New("not an nbio connection")
	}
	_ = conn.SetReadDeadline(time.Time{})
	if g.ln != nil {
		g.ln.upgraded(conn)
	}
	g.edgeUpgraded(conn)
	s := &sseSession{g: g, conn: conn, out: hc, cl: g.hub.NewSSEClient(hc)}
	if g.hooks.connect != nil || g.hooks.subscribe != nil {
		s.hk = &inOrder{}
	}
	nbc.SetSession(s)
	return s, nil
}

// sseHead writes the response head and the retry field; a failed write
// leaves the cleanup to the close callback.
func (g *Gateway) sseHead(s *sseSession) {
	head := make([]byte, 0, len(sseHead)+26+corsLen(s.origin))
	head = append(head, sseHead...)
	head = appendCORS(head, s.origin)
	head = append(head, "\r\nretry: "...)
	head = strconv.AppendInt(head, int64(SSERetryMin+rand.IntN(SSERetryWindow)), 10)
	head = append(head, "\n\n"...)
	if _, err := s.out.Write(head); err == nil {
		g.m.BytesOut.Add(len(head))
	}
}

// underlying unwraps nbhttp's connection wrapper.
func underlying(c net.Conn) net.Conn {
	if hc, ok := c.(*nbhttp.Conn); ok {
		return hc.Conn
	}
	return c
}

// sseClosed is an SSE connection's close: it leaves the bus and the hub,
// and gives back what the handler took.
func (g *Gateway) sseClosed(s *sseSession, err error) {
	if s.hk != nil {
		s.hk.close() // before reading what a hook's answer records (ssehooks.go)
	}
	cl := s.cl
	if errors.Is(err, nbio.ErrOverflow) {
		cl.SetCloseReason(hub.CloseSlow)
	}
	for _, topic := range cl.Topics() {
		_ = g.bus.Unsubscribe(bus.Subscription{Subscriber: cl, Topic: topic, Quiet: true})
	}
	g.hub.Unregister(cl)
	user := ""
	if s.grant != nil {
		user = s.grant.Sub
	}
	if g.cfg.OnClosed != nil {
		g.cfg.OnClosed(cl, user)
	}
	g.acc.perIP.Release(s.ip)
	s.ip = netip.Addr{}
	if s.grant != nil {
		g.acc.users.Remove(s.grant.Sub)
		g.acc.byUser.remove(s.grant.Sub, cl)
	}
	g.reserved.Add(-1)
}
