// Package gateway is wspush's WebSocket listener: an nbio engine in
// non-blocking mode that upgrades requests on /ws, answers client messages
// and hands each connection to the hub. There is no goroutine per
// connection: nbio's pollers read sockets and parse frames, and message
// handlers run on the gateway's executor (executor.go: a few long-lived
// workers behind a bounded queue).
//
// # Concurrency contract
//
//   - Handlers (upgrade, OnOpen, OnMessage, ping/pong/close, OnClose) run on
//     nbio's goroutines, one at a time per connection, and never block: every
//     write is a non-blocking nbio write of one whole frame.
//   - reserved counts connections upgraded or being upgraded; it is the
//     max-conns gate. draining only ever goes from false to true (on
//     StopAccepting and on shutdown).
//   - Lifecycle, as for every wspush component: Start binds the socket and
//     launches nbio's goroutines and the edge's sweep; Run waits until its
//     context is done, then closes every connection, stops them and
//     returns. StopAccepting, a step of the drain before that, only closes
//     the listening socket.
//   - Before its upgrade a connection is the edge's (edge.go): every read
//     passes through it first, under the connection's own mutex; open
//     sockets are counted by the listener (limits.go).
//   - Only a socket's poller closes it: other goroutines (executor, hub
//     shards, the edge's sweep) shut it down for the poller to close, so
//     that a descriptor number is never freed, and reused by a new
//     connection, while the poller may hold events for it (pollerclose.go).
//     nbio itself still closes from the writing goroutine when a write
//     fails, and, for TLS, after a close frame.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"wspush/server/internal/auth"
	"wspush/server/internal/bus"
	"wspush/server/internal/frameguard"
	"wspush/server/internal/hub"
	"wspush/server/internal/metrics"
	"wspush/server/wire"
)

// Config configures the listener; the zero value of each field means its
// default.
type Config struct {
	// Addr is the listen address (default ":8080").
	Addr string
	// ReusePort sets SO_REUSEPORT, so that several processes can share Addr.
	ReusePort bool
	// TCPKeepAlive is the kernel keepalive period of accepted sockets.
	// Default 0: off. Liveness is the hub's WebSocket pings and idle
	// timeout; Go's default 15 s keepalive would add two packets per
	// connection every 15 s (133k packets/s at a million connections).
	TCPKeepAlive time.Duration
	// MaxConns caps connections; over it an upgrade gets HTTP 503. Default:
	// RLIMIT_NOFILE minus a reserve for the admin listener, NATS and files
	// (MaxConnsFor, limits.go). Open sockets, upgraded or not, are capped
	// a little above it and below the file limit; over that a socket is
	// answered with a raw 503 at accept.
	MaxConns int
	// MaxHeaderBytes caps each HTTP request header before the upgrade
	// (default 8 KiB); over it the client gets 431 and is closed (edge.go).
	MaxHeaderBytes int
	// HandshakeTimeout is the longest time from accept to a complete
	// upgrade (default 10 s); a connection over it is closed.
	HandshakeTimeout time.Duration
	// MaxMessageBytes caps an inbound message (default 4096); over it the
	// connection is closed with 1009.
	MaxMessageBytes int
	// MaxBadMessages closes a connection with 1008 after this many bad
	// messages in a row (default 10).
	MaxBadMessages int
	// Welcome is the welcome frame's text (default "Welcome to the server!").
	Welcome string
	// Pollers is the number of nbio poller goroutines (default NumCPU/2, at
	// least 1).
	Pollers int
	// Page, when set, is served at "/" (the demo page).
	Page http.Handler
	// Script, when set, is served at GET /wspush.js and GET /wspush/ (the
	// JavaScript client's entry module and the modules it imports,
	// package client; it answers 404 for paths it does not have).
	Script http.Handler
	// MaxSubs caps a client's subscriptions (default 64).
	MaxSubs int
	// ClientPublish lets clients publish with pub frames (off by default:
	// publishers use the admin API).
	ClientPublish bool
	// Compression offers permessage-deflate (RFC 7692, no context
	// takeover); published messages then go compressed to clients that
	// accept it, each compressed once for all of them.
	Compression bool

	// Access control (access.go, docs/security.md). For the numbers, 0
	// means the default and a negative value means no limit.

	// Auth, when enabled, requires a valid JWT to upgrade (HTTP 401 if not).
	Auth auth.Config
	// AllowedOrigins are the browser origins that may upgrade: exact
	// "scheme://host[:port]", or "*". Empty: the Host header's own origin.
	// Requests without an Origin header (not browsers) always pass.
	AllowedOrigins []string
	// MaxConnsPerIP caps connections from one IP address (default
	// DefaultMaxConnsPerIP: no cap); over it an upgrade gets HTTP 429.
	MaxConnsPerIP int
	// AcceptRate caps upgrades per second over the whole server (default
	// 5000), with bursts of AcceptBurst (default: one second's worth); over
	// it an upgrade gets HTTP 503 with Retry-After.
	AcceptRate, AcceptBurst int
	// MaxMsgRate caps each connection's inbound messages per second
	// (default 100), with bursts of MaxMsgBurst (default twice the rate);
	// over it the connection is closed with 1008 "rate limit". Every frame
	// also counts against FramesPerMessage times the rate and the burst
	// (guard.go); over that: 1008 "frame rate limit".
	MaxMsgRate, MaxMsgBurst int
	// MaxClientPubRate caps each connection's pub messages per second
	// (default 10), with bursts of MaxClientPubBurst (default twice the
	// rate); a pub over it gets an error frame "rate_limited" and is not
	// published.
	MaxClientPubRate, MaxClientPubBurst int
	// TLSCertFile and TLSKeyFile, both set, make the listener wss:// only.
	TLSCertFile, TLSKeyFile string
	// Hooks are the application's backend hooks (hooks.go,
	// docs/backend.md), all off by default.
	Hooks Hooks
	// OnClosed, when set, is called once per connection after it closed
	// and left the hub, with its client (CloseLabel tells why) and user
	// ("" without authentication); it runs on nbio's goroutines and must
	// not block (the webhook sender queues without waiting).
	OnClosed func(cl *hub.Client, user string)
	// Logger receives the gateway's own log lines (failed accepts, at a
	// bounded rate); nil means slog.Default(). nbio's global logger is the
	// program's to set (main routes it to slog), not the gateway's.
	Logger *slog.Logger
}

// Bus is what the gateway needs of the message bus.
type Bus interface {
	Publish(topic string, data []byte) (*bus.Message, error)
	// Subscribe and Unsubscribe start and end a client's subscription
	// (Unsubscribe: bus.ErrNotSubscribed if it has none).
	Subscribe(s bus.Subscription) error
	Unsubscribe(s bus.Subscription) error
}

// Defaults.
const (
	DefaultAddr            = ":8080"
	DefaultMaxMessageBytes = 4096
	DefaultMaxBadMessages  = 10
	DefaultWelcome         = "Welcome to the server!"
	DefaultMaxSubs         = 64
	// DefaultMaxHeaderBytes is what common proxies allow a request header.
	DefaultMaxHeaderBytes   = 8 << 10
	DefaultHandshakeTimeout = 10 * time.Second
	// writeSlack is what nbio's own write cap allows beyond the hub's, so
	// that a close frame still fits behind a full buffer.
	writeSlack = 1024
)

// Gateway is a running WebSocket listener.
type Gateway struct {
	cfg      Config
	hub      *hub.Hub
	bus      Bus
	m        *metrics.Metrics
	engine   *nbhttp.Engine
	ln       *listener
	edge     *edge // edge.go: from accept to the upgrade
	upgrader *websocket.Upgrader
	acc      *access
	frames   *frameguard.Limits // guard.go: every connection's frame checks
	hooks    *hooks             // hooks.go: the backend hooks
	exec     *executor          // executor.go: runs nbio's handler jobs
	reserved atomic.Int64
	draining atomic.Bool
	handoff  atomic.Uint64 // see New
	bufs     sync.Pool     // *[]byte scratch for reply frames
	// guardData is scanData as a func value, made once: every plain-TCP
	// connection's data handler (guard.go).
	guardData func(*nbio.Conn, []byte)
}

// New returns a gateway for h and b; maxUnsent is the hub's per-client cap
// on unsent bytes.
func New(cfg Config, h *hub.Hub, b Bus, m *metrics.Metrics, maxUnsent int) (*Gateway, error) {
	cfg, err := cfg.withDefaults() // defaults.go
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, hub: h, bus: b, m: m}
	if g.acc, err = newAccess(&cfg); err != nil {
		return nil, err
	}
	g.frames = frameLimits(&cfg)
	if g.hooks, err = newHooks(&cfg, m); err != nil {
		return nil, err
	}
	tlsConf, err := tlsConfig(&cfg)
	if err != nil {
		return nil, err
	}
	addrs, addrsTLS := []string{cfg.Addr}, []string(nil)
	if tlsConf != nil {
		addrs, addrsTLS = nil, addrs
	}
	g.bufs.New = func() any { b := make([]byte, 0, 256); return &b }

	mux := http.NewServeMux()
	mux.HandleFunc("/ws", g.guardHandshake(g.upgrade)) // guard.go
	mux.HandleFunc("/sse", g.serveSSE)                 // sse.go
	if cfg.Page != nil {
		mux.Handle("/{$}", cfg.Page)
	}
	if cfg.Script != nil {
		mux.Handle("GET /wspush.js", cfg.Script)
		mux.Handle("GET /wspush/", cfg.Script)
	}
	pollers := cfg.Pollers
	if pollers <= 0 {
		pollers = max(1, nbioCPUs()/2)
	}
	sockets := socketsCap(cfg.MaxConns, FileLimit())
	g.exec = newExecutor(4*nbioCPUs(), cfg.Logger)
	g.engine = nbhttp.NewEngine(nbhttp.Config{
		MaxLoad:            max(sockets, nbhttp.DefaultMaxLoad),
		Network:            "tcp",
		Addrs:              addrs,
		AddrsTLS:           addrsTLS,
		TLSConfig:          tlsConf,
		Listen:             g.listen,
		IOMod:              nbhttp.IOModNonBlocking,
		NPoller:            pollers,
		MaxWriteBufferSize: maxUnsent + writeSlack,
		ServerExecutor:     g.exec.Execute,
		Handler:            mux,
	})
	g.engine.CheckUtf8 = acceptUTF8 // text and close reasons are checked in guard.go
	g.edge = newEdge(cfg.MaxHeaderBytes, cfg.HandshakeTimeout, tlsConf == nil)
	g.edge.onRefused = func() { m.UpgradeFailed(metrics.UpgradeTooLarge) }
	g.edge.onTimeout = func() { m.UpgradeFailed(metrics.UpgradeTimeout) }
	g.ln = newListener(nil)
	g.ln.maxOpen, g.ln.refused = int64(sockets), func() { m.UpgradeFailed(metrics.UpgradeMaxConns) }
	g.ln.errLog.log = cfg.Logger
	g.engine.OnOpen(g.edge.opened) // before nbio's first read of the socket
	g.engine.OnClose(func(c net.Conn, _ error) {
		if nbc, ok := c.(*nbio.Conn); ok {
			g.edge.forget(nbc)
		}
		g.ln.closedOne()
	})
	g.engine.Engine.OnData(g.edge.onData) // every read goes through the edge first
	g.engine.Engine.OnWrittenSize(written)
	g.guardData = g.scanData // one func value for every connection (guard.go)
	// nbio hands an accepted connection to its poller through epoll, which
	// Go's memory model (and so the race detector) cannot see. An atomic
	// store after the accept goroutine has set the connection up, and a load
	// before every read, make that hand-off a happens-before edge.
	g.engine.Engine.OnOpen(func(*nbio.Conn) { g.handoff.Add(1) })
	g.engine.Engine.OnReadBufferAlloc(func(c *nbio.Conn) *[]byte {
		g.handoff.Load()
		return g.engine.Engine.PollerBufferPtr(c)
	})
	g.upgrader = g.newUpgrader()
	return g, nil
}

// written tells a client how many of its bytes the socket took.
func written(c *nbio.Conn, _ []byte, n int) {
	switch s := c.Session().(type) {
	case *websocket.Conn:
		// The session's own client, which cl points to (onOpen): reading
		// cl would cost a cache miss per write on the push path.
		if ss, ok := s.Session().(*session); ok {
			ss.client.Written(n)
		}
	case *sseSession:
		s.cl.Written(n)
	}
}

// listen hands nbio the socket Start has bound.
func (g *Gateway) listen(network, addr string) (net.Listener, error) {
	if g.ln == nil || g.ln.Listener == nil {
		if err := g.bind(network, addr); err != nil {
			return nil, err
		}
	}
	return g.ln, nil
}

// bind opens the listening socket. Start does it before nbio starts: nbio
// v1.6.8 hangs in Engine.Stop when its own listen fails.
func (g *Gateway) bind(network, addr string) error {
	lc := net.ListenConfig{KeepAlive: -1}
	if g.cfg.TCPKeepAlive > 0 {
		lc.KeepAlive = g.cfg.TCPKeepAlive
	}
	if g.cfg.ReusePort {
		lc.Control = reusePort
	}
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return fmt.Errorf("gateway: listen on %s: %w", addr, err)
	}
	if g.ln == nil {
		g.ln = newListener(nil)
	}
	g.ln.init(ln)
	if lc.KeepAlive < 0 && g.cfg.TLSCertFile == "" {
		g.ln.raw = newRawAcceptor(ln) // rawaccept.go: nil if not possible
	}
	return nil
}

// Start listens and starts nbio.
func (g *Gateway) Start() error {
	if err := g.bind("tcp", g.cfg.Addr); err != nil {
		return err
	}
	if err := g.engine.Start(); err != nil {
		_ = g.ln.Listener.Close()
		return fmt.Errorf("gateway: start: %w", err)
	}
	go g.edge.run()
	g.hooks.start()
	return nil
}

// Addr returns the address the gateway listens on.
func (g *Gateway) Addr() net.Addr { return g.ln.Addr() }

// StopAccepting closes the listening socket: new connections are refused
// and in-flight upgrades get 503, while established clients stay.
func (g *Gateway) StopAccepting() {
	g.draining.Store(true)
	g.ln.stop()
}

// ShutdownTimeout bounds how long Run waits for nbio to stop.
const ShutdownTimeout = 2 * time.Second

// Run returns when ctx is done, having closed every remaining connection
// and stopped nbio (waiting for it up to ShutdownTimeout). Call it after a
// successful Start.
func (g *Gateway) Run(ctx context.Context) error {
	<-ctx.Done()
	g.draining.Store(true)
	g.edge.stopSweep()
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := g.engine.Shutdown(sctx)
	g.exec.Stop()
	g.hooks.shutdown()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	return nil
}

func (g *Gateway) newUpgrader() *websocket.Upgrader {
	u := websocket.NewUpgrader()
	u.Engine = g.engine
	u.KeepaliveTime = 0 // liveness is the hub's wheel, not a timer per connection
	u.MessageLengthLimit = g.cfg.MaxMessageBytes
	u.CheckOrigin = g.acc.checkOrigin
	u.EnableCompression(g.cfg.Compression)
	u.OnOpen(g.onOpen)
	u.OnMessage(g.checkText(g.onMessage))
	u.OnClose(g.onClose)
	u.SetPingHandler(g.onPing)
	u.SetPongHandler(func(c *websocket.Conn, _ string) {
		if cl := client(c); cl != nil {
			cl.Touch()
		}
	})
	u.SetCloseHandler(g.checkCloseFrame(g.onCloseFrame))
	return u
}

func client(c *websocket.Conn) *hub.Client {
	if s, ok := c.Session().(*session); ok {
		return s.cl
	}
	return nil
}

func (g *Gateway) onOpen(c *websocket.Conn) {
	if g.ln != nil {
		g.ln.upgraded(c.Conn)
	}
	conn := c.Conn
	if hc, ok := conn.(*nbhttp.Conn); ok {
		conn = hc.Conn
	}
	g.edgeUpgraded(conn)
	if nbc, ok := conn.(*nbio.Conn); ok {
		compactAddrs(nbc) // addrs.go: 16 B instead of nbio's 160
	}
	// The connection's one allocation of gateway and hub state (access.go).
	s := &session{}
	g.hub.InitClient(&s.client, pollerClosed(c, conn)) // only the poller closes the socket (pollerclose.go)
	s.cl = &s.client
	c.SetSession(s)
	if g.holdForConnect(c) { // hooks.go: the welcome waits for the connect hook
		return
	}
	g.welcome(s.cl)
}

// welcome places cl in the hub, sends its welcome, and registers it.
func (g *Gateway) welcome(cl *hub.Client) {
	interval := g.hub.PushInterval().Milliseconds()
	firstDue := g.hub.Place(cl) // the welcome says when tick 1 is due, then the shard may tick
	g.reply(cl, func(b []byte) []byte { return wire.AppendWelcome(b, cl.ID(), interval, firstDue, g.cfg.Welcome) })
	g.hub.Register(cl)
}

// reply encodes one text frame with enc and sends it to cl.
func (g *Gateway) reply(cl *hub.Client, enc func([]byte) []byte) {
	pb := g.bufs.Get().(*[]byte)
	buf := enc(wire.BeginFrame(*pb))
	frame := wire.EndFrame(buf, wire.OpText)
	if cl.Send(frame) {
		g.m.FramesOut.Inc()
		g.m.BytesOut.Add(len(frame))
	}
	if cap(buf) <= 4096 {
		*pb = buf[:0]
		g.bufs.Put(pb)
	}
}

func (g *Gateway) onMessage(c *websocket.Conn, mt websocket.MessageType, data []byte) {
	cl := client(c)
	if cl == nil {
		return
	}
	cl.Touch()
	g.m.FramesIn.Inc()
	g.m.BytesIn.Add(len(data))
	if cl.Closing() || !g.withinRate(c, cl) {
		return
	}
	text := mt == websocket.TextMessage
	if g.held(c, cl, text, data) { // hooks.go: behind one of its backend calls
		return
	}
	g.handle(c, cl, text, data)
}

// handle parses and answers one message, on nbio's executor or, for a
// message held behind a backend call, on the hook worker (order.go).
func (g *Gateway) handle(c *websocket.Conn, cl *hub.Client, text bool, data []byte) {
	var msg wire.ClientMsg
	var err error
	if !text {
		err = &wire.ProtocolError{Code: wire.CodeBadRequest, Reason: "binary messages are not supported; send JSON text"}
	} else {
		msg, err = wire.ParseClient(data)
	}
	if err != nil {
		g.badMessage(cl, err, msg.ID)
		return
	}
	cl.GoodMessage()
	if !g.permitted(c, cl, &msg) {
		return
	}
	switch msg.Type {
	case wire.TypePing:
		g.reply(cl, func(b []byte) []byte { return wire.AppendPong(b, msg.ID) })
	case wire.TypeSub:
		g.subscribe(c, cl, &msg)
	case wire.TypeUnsub:
		g.unsubscribe(cl, &msg)
	case wire.TypePub:
		g.publish(c, cl, &msg)
	case wire.TypeRPC:
		g.rpc(c, cl, &msg) // hooks.go
	}
}

func (g *Gateway) badMessage(cl *hub.Client, err error, id []byte) {
	g.m.BadInput.Inc()
	pe := &wire.ProtocolError{Code: wire.CodeBadRequest, Reason: err.Error()}
	errors.As(err, &pe)
	g.reply(cl, func(b []byte) []byte { return wire.AppendError(b, pe.Code, pe.Reason, id) })
	if n := cl.BadMessage(); n >= uint32(g.cfg.MaxBadMessages) {
		cl.CloseWith(hub.CloseBadInput)
	}
}

func (g *Gateway) onPing(c *websocket.Conn, data string) {
	cl := client(c)
	if cl == nil {
		return
	}
	cl.Touch()
	var b [2 + 125]byte
	cl.Send(wire.AppendFrame(b[:0], wire.OpPong, []byte(data)))
}

// onCloseFrame answers a client's close frame with the same code, unless
// the server started the close; nbio closes the socket afterwards.
func (g *Gateway) onCloseFrame(c *websocket.Conn, code int, reason string) {
	cl := client(c)
	if cl == nil || cl.Closing() {
		return
	}
	if code == 1005 { // no status code: answer with an empty close frame
		cl.Send([]byte{0x80 | wire.OpClose, 0})
		return
	}
	var b [2 + 2 + 123]byte
	cl.Send(wire.AppendCloseFrame(b[:0], uint16(code), ""))
}

func (g *Gateway) onClose(c *websocket.Conn, err error) {
	cl := client(c)
	if cl == nil {
		return
	}
	g.hookClosed(c) // before the session is given back (closed)
	switch {
	case err == nil:
	case errors.Is(err, nbio.ErrOverflow):
		cl.SetCloseReason(hub.CloseSlow)
	case errors.Is(err, nbio.ErrReadTimeout), errors.Is(err, nbio.ErrWriteTimeout):
		cl.SetCloseReason(hub.CloseTimeout)
	case errors.Is(err, websocket.ErrMessageTooLarge):
		cl.SetCloseReason(hub.CloseTooBig)
	case errors.Is(err, websocket.ErrReserveBitSet), errors.Is(err, websocket.ErrReservedMessageType),
		errors.Is(err, websocket.ErrControlMessageFragmented), errors.Is(err, websocket.ErrControlMessageTooBig),
		errors.Is(err, websocket.ErrFragmentsShouldNotHaveBinaryOrTextMessage), errors.Is(err, websocket.ErrInvalidUtf8),
		errors.Is(err, websocket.ErrInvalidCloseCode), errors.Is(err, websocket.ErrInvalidFragmentMessage):
		cl.SetCloseReason(hub.CloseProtocol)
	}
	for _, topic := range cl.Topics() {
		_ = g.bus.Unsubscribe(bus.Subscription{Subscriber: cl, Topic: topic, Quiet: true})
	}
	g.hub.Unregister(cl)
	if g.cfg.OnClosed != nil {
		g.cfg.OnClosed(cl, userOf(sessionOf(c)))
	}
	g.closed(c)
	g.reserved.Add(-1)
}
