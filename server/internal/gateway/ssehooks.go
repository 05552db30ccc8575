package gateway

import (
	"cmp"
	"encoding/json"
	"net/http"
	"strconv"

	"wspush/server/internal/hook"
	"wspush/server/internal/hub"
	"wspush/server/wire"
)

// This file applies the backend hooks (hooks.go) to SSE streams (sse.go).
//
// Connect hook. Unlike a WebSocket upgrade, whose 101 nbio writes before
// the handler can wait for anything, an SSE stream's response head is the
// gateway's own to write (the connection is hijacked), so it is held back:
// the handler hijacks the connection, posts the connect request (with
// "transport":"sse") and returns; the stream is then pending — no head,
// no welcome, not in the hub, not subscribed, so no tick, message or
// broadcast reaches it — until the answer, on the hook's worker:
//
//   - accept: the head, the welcome with the backend's user, patterns and
//     expiry (the wheel ends the stream at expire_at, as it closes a
//     WebSocket), then the topics; a topic of the query outside the
//     backend's patterns refuses the whole request with 403, as one
//     outside a JWT's does;
//   - refusal or failure: a plain HTTP response with the status (the
//     backend's 400-599; 502 bad answer, 503 unreachable, breaker open or
//     queue full, 504 timeout) and the reason as its body, then close.
//     The client always sees the status: nothing was written before it.
//
// A pending stream holds what a pending WebSocket does: its -max-conns
// and per-IP counts, taken before the hijack, and one queued call; it
// lasts at most -proxy-timeout (≤ -handshake-timeout). Nothing waits on a
// poller or the executor, and there is no goroutine or timer per stream.
//
// Subscribe hook. After the welcome, the query's topics go through the
// hook one at a time, in their order, each call started by the previous
// one's answer (so a stream has at most one call in flight, as a
// WebSocket connection does): allowed, the topic is subscribed with the
// backend's data in its subscribed event; denied or failed, an error
// event (code forbidden, or the failure's code as for a WebSocket sub)
// whose id is the topic, and the stream goes on with the others.
//
// The stream's close may run while a call is in flight: sseSession.hk's
// closed flag, set by sseClosed before it reads the session, makes a late
// answer do nothing (inOrder.ifOpen).

// sseConnectHook posts the connect request of a hijacked stream; the
// answer starts or refuses it (sseConnected).
func (g *Gateway) sseConnectHook(s *sseSession, r *http.Request, req *sseRequest) {
	done := func(b []byte, err error) { g.sseConnected(s, req, b, err) }
	body, err := json.Marshal(g.connectRequest(r, s.cl.ID(), "sse"))
	if err == nil {
		err = g.hooks.connect.Call(body, done)
	}
	if err != nil {
		done(nil, err)
	}
}

// sseConnected applies the connect hook's answer to a pending stream.
func (g *Gateway) sseConnected(s *sseSession, req *sseRequest, body []byte, err error) {
	grant, status, reason := connectVerdict(body, err)
	if grant != nil {
		for _, t := range req.topics {
			if !grant.MaySubscribe(t) {
				grant, status, reason = nil, http.StatusForbidden, "sse: the application does not allow subscribing to "+t
				break
			}
		}
	}
	if grant == nil {
		s.hk.ifOpen(func() { g.sseRefuse(s, status, reason) })
		return
	}
	if !s.hk.ifOpen(func() {
		g.sseHead(s)
		g.sseAdmit(s, grant, req)
	}) {
		return
	}
	if g.hooks.subscribe != nil {
		g.sseSubscribeHook(s, req, 0)
	}
}

// sseRefuse answers a pending stream with an HTTP error and closes it.
func (g *Gateway) sseRefuse(s *sseSession, status int, reason string) {
	s.cl.SetCloseReason(hub.Refusal(uint16(4000+status), reason))
	body := reason + "\n"
	b := make([]byte, 0, 160+len(body))
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, cmp.Or(http.StatusText(status), "Refused")...)
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-cache\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	if status == http.StatusServiceUnavailable {
		b = append(b, "\r\nRetry-After: 1"...)
	}
	b = append(b, "\r\nConnection: close\r\n"...)
	b = appendCORS(b, s.origin) // sseedge.go
	b = append(b, "\r\n"...)
	b = append(b, body...)
	if _, err := s.out.Write(b); err == nil {
		g.m.BytesOut.Add(len(b))
	}
	_ = s.out.Close() // shuts the socket down; its poller closes it (pollerclose.go)
}

// sseSubscribeHook asks the subscribe hook about the request's topics from
// the i-th on, one call at a time.
func (g *Gateway) sseSubscribeHook(s *sseSession, req *sseRequest, i int) {
	if i >= len(req.topics) {
		return
	}
	t := req.topics[i]
	mode := wire.ModeStream
	if req.latest {
		mode = wire.ModeLatest
	}
	done := func(b []byte, err error) {
		a, err := answerOf(b, err)
		var data []byte
		if err == nil && a.Error == nil {
			data, err = dataOf(a)
		}
		if !s.hk.ifOpen(func() {
			switch {
			case err != nil:
				code, reason := hookFailure("subscribe", err)
				g.fail(s.cl, code, reason, topicID(t))
			case a.Error != nil:
				g.fail(s.cl, wire.CodeForbidden, cmp.Or(a.Error.Message, "the application does not allow subscribing to "+t), topicID(t))
			default:
				g.sseSub(s, req, t, data)
			}
		}) {
			return
		}
		g.sseSubscribeHook(s, req, i+1)
	}
	user := ""
	if s.grant != nil {
		user = s.grant.Sub
	}
	body, err := json.Marshal(hook.SubscribeRequest{Client: s.cl.ID(), User: user, Topic: t, Mode: mode})
	if err == nil {
		err = g.hooks.subscribe.Call(body, done)
	}
	if err != nil {
		done(nil, err)
	}
}
