package gateway

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/lesismal/nbio/nbhttp/websocket"

	"wspush/server/internal/auth"
	"wspush/server/internal/bus"
	"wspush/server/internal/hook"
	"wspush/server/internal/hub"
	"wspush/server/internal/metrics"
	"wspush/server/wire"
)

// This file connects the application's backend hooks (package hook,
// docs/backend.md) to the gateway. A hook's answer arrives on a hook
// worker goroutine; each connection's messages stay in order across its
// calls through its inOrder (order.go), which that worker takes over.
//
// The connect hook runs after the upgrade (nbio runs the upgrade handler
// on its executor and releases the request and response as soon as the
// handler returns, so the 101 cannot be held back for an asynchronous
// answer): the connection waits as "pending connect" — no welcome, no
// ticks, not in the hub, its messages held — until the backend accepts
// (then the welcome) or refuses (then a close frame 4000+status). The
// wait is bounded by the hook's timeout, which may not exceed
// -handshake-timeout, and the connection already counts against
// -max-conns and -max-conns-per-ip. A connection with a valid JWT is not
// sent to the connect hook (tokenAdmitted). SSE streams: ssehooks.go.

// Hooks configures the backend hooks; each URL left empty turns that hook
// off. The zero value of the other fields means their default.
type Hooks struct {
	// Connect is called on each upgrade; Subscribe for each sub; RPC for
	// each rpc; Publish for each client pub.
	Connect, Subscribe, RPC, Publish string
	// Timeout bounds each call, queueing included (default
	// hook.DefaultTimeout); with Connect it may not exceed the handshake
	// timeout.
	Timeout time.Duration
	// Concurrency is each hook's calls in flight (default
	// hook.DefaultConcurrency); Queue each hook's waiting calls (default
	// hook.DefaultQueue); Total the calls in flight over all hooks
	// (default hook.DefaultTotal).
	Concurrency, Queue, Total int
	// ConnectHeaders are the request headers passed to the connect hook
	// (default DefaultConnectHeaders), ConnectQuery the query parameters
	// (default DefaultConnectQuery); "*" passes all.
	ConnectHeaders, ConnectQuery []string
	// BreakerFailures failures in a row open each hook's circuit breaker
	// (default hook.DefaultBreakerFailures) for BreakerOpen (default
	// hook.DefaultBreakerCooldown).
	BreakerFailures int
	BreakerOpen     time.Duration
}

// Defaults of the connect hook's allow-lists.
var (
	DefaultConnectHeaders = []string{"Authorization", "Cookie", "Origin", "User-Agent"}
	DefaultConnectQuery   = []string{"token"}
)

// hooks are the gateway's hook callers; a nil Caller is a hook that is off.
type hooks struct {
	connect, subscribe, rpc, publish *hook.Caller
	headers, query                   allowList

	stop context.CancelFunc // set by start
	wg   sync.WaitGroup
}

// allowList is a set of names; all passes every name.
type allowList struct {
	all   bool
	names map[string]bool
}

func newAllowList(names []string, canon func(string) string) allowList {
	a := allowList{names: map[string]bool{}}
	for _, n := range names {
		switch n = strings.TrimSpace(n); n {
		case "":
		case "*":
			a.all = true
		default:
			a.names[canon(n)] = true
		}
	}
	return a
}

// orList is l, or def when l is empty.
func orList(l, def []string) []string {
	if len(l) == 0 {
		return def
	}
	return l
}

func newHooks(cfg *Config, m *metrics.Metrics) (*hooks, error) {
	hc := cfg.Hooks
	hs := &hooks{
		headers: newAllowList(orList(hc.ConnectHeaders, DefaultConnectHeaders), http.CanonicalHeaderKey),
		query:   newAllowList(orList(hc.ConnectQuery, DefaultConnectQuery), func(s string) string { return s }),
	}
	if hc.Connect != "" && cmp.Or(hc.Timeout, hook.DefaultTimeout) > cfg.HandshakeTimeout {
		return nil, fmt.Errorf("gateway: the hook timeout (%v) may not exceed the handshake timeout (%v) with a connect hook: a pending connect must not outlive it",
			cmp.Or(hc.Timeout, hook.DefaultTimeout), cfg.HandshakeTimeout)
	}
	limit := hook.NewLimit(hc.Total)
	var reg *metrics.Registry
	if m != nil {
		reg = m.Registry()
	}
	for _, h := range []struct {
		name string
		url  string
		c    **hook.Caller
	}{{"connect", hc.Connect, &hs.connect}, {"subscribe", hc.Subscribe, &hs.subscribe}, {"rpc", hc.RPC, &hs.rpc}, {"publish", hc.Publish, &hs.publish}} {
		if h.url == "" {
			continue
		}
		c, err := hook.New(h.name, hook.Config{URL: h.url, Timeout: hc.Timeout, Concurrency: hc.Concurrency, Queue: hc.Queue,
			BreakerFailures: hc.BreakerFailures, BreakerCooldown: hc.BreakerOpen}, limit, reg)
		if err != nil {
			return nil, fmt.Errorf("gateway: %s hook: %w", h.name, err)
		}
		*h.c = c
	}
	return hs, nil
}

func (hs *hooks) callers() []*hook.Caller {
	var out []*hook.Caller
	for _, c := range []*hook.Caller{hs.connect, hs.subscribe, hs.rpc, hs.publish} {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}

// start runs the callers' workers until stop.
func (hs *hooks) start() {
	ctx, cancel := context.WithCancel(context.Background())
	hs.stop = cancel
	for _, c := range hs.callers() {
		hs.wg.Add(1)
		go func() {
			defer hs.wg.Done()
			_ = c.Run(ctx)
		}()
	}
}

// shutdown stops the workers and waits for them.
func (hs *hooks) shutdown() {
	if hs.stop != nil {
		hs.stop()
	}
	hs.wg.Wait()
}

// held holds a message that arrived behind one of the connection's hook
// calls (order.go) and reports true; over MaxHeld it answers "overloaded".
func (g *Gateway) held(c *websocket.Conn, cl *hub.Client, text bool, data []byte) bool {
	s := sessionOf(c)
	if s == nil || s.hk == nil {
		return false
	}
	held, full := s.hk.hold(text, data)
	if full {
		m, _ := wire.ParseClient(data)
		g.fail(cl, wire.CodeOverloaded, fmt.Sprintf("more than %d messages wait behind a backend call; this one was dropped", MaxHeld), m.ID)
	}
	return held
}

// call starts a hook call for the connection's message: later messages
// are held until answer has run, then handled in order (drain).
func (g *Gateway) call(c *websocket.Conn, s *session, h *hook.Caller, req any, answer hook.Done) {
	body, err := json.Marshal(req)
	if err != nil { // not for these types: their data was checked JSON
		answer(nil, fmt.Errorf("%w: %w", hook.ErrBadResponse, err))
		return
	}
	if s.hk == nil {
		s.hk = &inOrder{} // the handler (executor, phaseIdle) is the only writer
	}
	if !s.hk.begin() {
		return
	}
	done := func(b []byte, err error) {
		answer(b, err)
		g.drain(c, s)
	}
	if err := h.Call(body, done); err != nil {
		done(nil, err)
	}
}

// drain handles the messages held behind a call, in order, until none is
// left or one starts another call.
func (g *Gateway) drain(c *websocket.Conn, s *session) {
	s.hk.finish()
	for {
		m, ok := s.hk.next()
		if !ok {
			return
		}
		g.handle(c, s.cl, m.text, m.data)
	}
}

// hookClosed marks a closing connection's inOrder closed, before its
// session is given back (closed), so that a late connect answer does not
// register it.
func (g *Gateway) hookClosed(c *websocket.Conn) {
	if s := sessionOf(c); s != nil && s.hk != nil {
		s.hk.close()
	}
}

// hookFailure is the error frame for a failed call.
func hookFailure(name string, err error) (code, reason string) {
	switch {
	case errors.Is(err, hook.ErrOverloaded):
		return wire.CodeOverloaded, "the application's " + name + " hook is at its queue limit; retry later"
	case errors.Is(err, hook.ErrTimeout):
		return wire.CodeTimeout, "the application's " + name + " hook did not answer in time"
	case errors.Is(err, hook.ErrUnavailable):
		return wire.CodeUnavailable, "the application's " + name + " hook is unavailable: " + strings.TrimPrefix(err.Error(), "hook: ")
	default:
		return wire.CodeBadGateway, "the application's " + name + " hook gave an invalid answer: " + strings.TrimPrefix(err.Error(), "hook: ")
	}
}

// answerOf decodes a call's answer; err is the call's or the decoding's.
func answerOf(body []byte, err error) (hook.Answer, error) {
	if err != nil {
		return hook.Answer{}, err
	}
	return hook.ParseAnswer(body)
}

func (g *Gateway) rpc(c *websocket.Conn, cl *hub.Client, msg *wire.ClientMsg) {
	if g.hooks.rpc == nil {
		g.fail(cl, wire.CodeNotAvailable, "rpc goes to the application's rpc hook, and this server has none (-proxy-rpc)", msg.ID)
		return
	}
	s := sessionOf(c)
	id := bytes.Clone(msg.ID)
	req := hook.RPCRequest{Client: cl.ID(), User: userOf(s), Method: msg.Method, Data: msg.Data}
	g.call(c, s, g.hooks.rpc, req, func(b []byte, err error) {
		a, err := answerOf(b, err)
		switch {
		case err != nil:
			code, reason := hookFailure("rpc", err)
			g.fail(cl, code, reason, id)
		case a.Error != nil:
			g.fail(cl, cmp.Or(a.Error.Code, CodeBackendError), cmp.Or(a.Error.Message, "refused by the application"), id)
		default:
			g.reply(cl, func(b []byte) []byte { return wire.AppendRPCResult(b, a.Result, id) })
		}
	})
}

// CodeBackendError is the error code of a backend refusal without a code.
const CodeBackendError = "backend_error"

// dataOf returns a subscribe or publish result's data; nil if none.
func dataOf(a hook.Answer) ([]byte, error) {
	var r hook.DataResult
	if err := json.Unmarshal(a.Result, &r); err != nil {
		return nil, fmt.Errorf("%w: result must be an object: %w", hook.ErrBadResponse, err)
	}
	if bytes.Equal(r.Data, []byte("null")) {
		return nil, nil
	}
	return r.Data, nil
}

// subscribeHook asks the backend about sub before it is made.
func (g *Gateway) subscribeHook(c *websocket.Conn, cl *hub.Client, msg *wire.ClientMsg, sub bus.Subscription) {
	s := sessionOf(c)
	sub.ID = bytes.Clone(sub.ID)
	req := hook.SubscribeRequest{Client: cl.ID(), User: userOf(s), Topic: sub.Topic, Mode: msg.Mode}
	g.call(c, s, g.hooks.subscribe, req, func(b []byte, err error) {
		a, err := answerOf(b, err)
		if err == nil && a.Error == nil {
			sub.Data, err = dataOf(a)
		}
		switch {
		case err != nil:
			code, reason := hookFailure("subscribe", err)
			g.fail(cl, code, reason, sub.ID)
		case a.Error != nil:
			g.fail(cl, wire.CodeForbidden, cmp.Or(a.Error.Message, "the application does not allow subscribing to "+sub.Topic), sub.ID)
		default:
			// Not after the close (onClose has left the client's topics):
			// the closed client would stay subscribed.
			s.hk.ifOpen(func() {
				if err := g.bus.Subscribe(sub); err != nil {
					g.fail(cl, wire.CodeLimit, err.Error(), sub.ID)
				}
			})
		}
	})
}

// publishHook passes a client's pub through the backend, which may refuse
// it or replace its data, then publishes it.
func (g *Gateway) publishHook(c *websocket.Conn, cl *hub.Client, msg *wire.ClientMsg) {
	s := sessionOf(c)
	id, topic, data := bytes.Clone(msg.ID), msg.Topic, bytes.Clone(msg.Data)
	req := hook.PublishRequest{Client: cl.ID(), User: userOf(s), Topic: topic, Data: data}
	g.call(c, s, g.hooks.publish, req, func(b []byte, err error) {
		a, err := answerOf(b, err)
		var rewritten []byte
		if err == nil && a.Error == nil {
			rewritten, err = dataOf(a)
		}
		switch {
		case err != nil:
			code, reason := hookFailure("publish", err)
			g.fail(cl, code, reason, id)
		case a.Error != nil:
			g.fail(cl, cmp.Or(a.Error.Code, wire.CodeForbidden), cmp.Or(a.Error.Message, "the application refused the publish"), id)
		default:
			if rewritten != nil {
				data = bytes.Clone(rewritten)
			}
			g.publishNow(cl, topic, data, id)
		}
	})
}

// holdForConnect makes an upgraded connection wait for the connect hook
// (onOpen): its messages are held and it gets no welcome yet.
func (g *Gateway) holdForConnect(c *websocket.Conn) bool {
	if g.hooks.connect == nil {
		return false
	}
	sessionOf(c).hk = &inOrder{phase: phaseCalling}
	return true
}

// connectHook asks the backend about an upgraded connection (the upgrade
// handler, after onOpen) and reports true; false when there is no connect
// hook. The connection's per-IP count is taken now; its grant is the
// backend's answer (connected). A connection that came with a valid JWT
// is not sent to the hook: its token is its grant (tokenAdmitted).
func (g *Gateway) connectHook(c *websocket.Conn, r *http.Request, jwt *auth.Grant, ip netip.Addr) bool {
	if g.hooks.connect == nil {
		return false
	}
	if jwt != nil {
		g.tokenAdmitted(c, jwt, ip)
		return true
	}
	g.opened(c, nil, ip)
	s := sessionOf(c)
	if s == nil {
		return true
	}
	body, err := json.Marshal(g.connectRequest(r, s.cl.ID(), "websocket"))
	if err == nil {
		err = g.hooks.connect.Call(body, func(b []byte, err error) { g.connected(c, s, b, err) })
	}
	if err != nil {
		g.connected(c, s, nil, err)
	}
	return true
}

// tokenAdmitted admits a connection that onOpen held for the connect hook
// but that came with a valid JWT (-jwt-* and -proxy-connect both on): as
// in Centrifugo, a token is enough and the hook is asked only about
// connections without one (docs/backend.md). Nothing is held yet (the
// edge keeps what the client sends until the upgrade handler returns).
func (g *Gateway) tokenAdmitted(c *websocket.Conn, grant *auth.Grant, ip netip.Addr) {
	g.opened(c, grant, ip)
	s := sessionOf(c)
	if s == nil {
		return
	}
	g.welcome(s.cl)
	g.drain(c, s)
}

// connectRequest is the connect hook's request for r, with the
// allow-listed headers and query parameters.
func (g *Gateway) connectRequest(r *http.Request, client, transport string) hook.ConnectRequest {
	req := hook.ConnectRequest{Client: client, RemoteAddr: r.RemoteAddr, Transport: transport, Path: r.URL.Path}
	for name, v := range r.Header {
		if g.hooks.headers.all || g.hooks.headers.names[name] {
			if req.Headers == nil {
				req.Headers = map[string]string{}
			}
			req.Headers[name] = strings.Join(v, ", ")
		}
	}
	for name, v := range r.URL.Query() {
		if len(v) > 0 && (g.hooks.query.all || g.hooks.query.names[name]) {
			if req.Query == nil {
				req.Query = map[string]string{}
			}
			req.Query[name] = v[0]
		}
	}
	return req
}

// connectVerdict reads the connect hook's answer: the grant when it
// accepts; else the HTTP-like status of the refusal (the backend's, or
// 502, 503, 504 for a failed call; a WebSocket gets close 4000+status, an
// SSE request the status itself) and its reason.
func connectVerdict(body []byte, err error) (grant *auth.Grant, status int, reason string) {
	a, err := answerOf(body, err)
	if err == nil && a.Error == nil {
		grant, err = connectGrant(a.Result)
	}
	switch {
	case err != nil:
		status = http.StatusBadGateway
		switch {
		case errors.Is(err, hook.ErrTimeout):
			status = http.StatusGatewayTimeout
		case errors.Is(err, hook.ErrUnavailable), errors.Is(err, hook.ErrOverloaded):
			status = http.StatusServiceUnavailable
		}
		_, reason = hookFailure("connect", err)
		return nil, status, reason
	case a.Error != nil:
		status = cmp.Or(a.Error.Status, http.StatusForbidden)
		if status < 400 || status > 599 {
			return nil, http.StatusBadGateway, "the application's connect hook gave an invalid answer: status must be 400 to 599"
		}
		return nil, status, cmp.Or(a.Error.Message, http.StatusText(status))
	}
	return grant, 0, ""
}

// connected applies the connect hook's answer: accept (grant, welcome,
// hub, then the held messages) or refuse (close 4000+status).
func (g *Gateway) connected(c *websocket.Conn, s *session, body []byte, err error) {
	grant, status, reason := connectVerdict(body, err)
	if grant == nil {
		s.cl.CloseWith(hub.Refusal(uint16(4000+status), reason))
		return
	}
	if !s.hk.ifOpen(func() {
		g.opened(c, grant, s.countedIP())
		g.welcome(s.cl)
	}) {
		return
	}
	g.drain(c, s)
}

// connectGrant turns the connect hook's result into a grant.
func connectGrant(result json.RawMessage) (*auth.Grant, error) {
	var r hook.ConnectResult
	if err := json.Unmarshal(result, &r); err != nil {
		return nil, fmt.Errorf("%w: result must be an object with user: %w", hook.ErrBadResponse, err)
	}
	var expiry time.Time
	if r.ExpireAt > 0 {
		expiry = time.Unix(r.ExpireAt, 0)
	}
	grant, err := auth.NewGrant(r.User, expiry, r.Topics, r.Pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", hook.ErrBadResponse, err)
	}
	return grant, nil
}
