package gateway

import (
	"net"
	"net/http"
	"unicode/utf8"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
	"golang.org/x/sys/unix"

	"wspush/server/internal/frameguard"
	"wspush/server/internal/hub"
	"wspush/server/internal/metrics"
	"wspush/server/wire"
)

// This file hooks the frame guard (RFC 6455 checks nbio does not make, or
// answers with the wrong close code) into the gateway:
//
//   - guardHandshake refuses malformed opening handshakes (400, 405, 426)
//     and gives each plain-TCP connection that goes on to upgrade the
//     guard's data handler (scanData, with the guard's state in the session) in
//     place of nbio's: it runs the header scanner over the bytes on the
//     poller goroutine before nbio parses them. TLS connections keep nbio's handler (their bytes are
//     ciphertext at that point) and get nbio's own checks.
//   - The guard hands nbio the bytes up to an empty data message and
//     delivers that message itself, in order (nbio drops empty messages),
//     and hands nbio the frames before a violation, then fails the
//     connection: a close frame with the violation's code, then the socket
//     is closed at once (RFC 6455 §7.1.7), without waiting for the client's
//     close.
//   - Every frame counts against a per-connection frame budget derived from
//     the message rate (frameLimits); over it: close 1008.
//   - nbio's UTF-8 check is turned off (it answers with 1002); checkText and
//     checkCloseFrame check text messages and close reasons instead, and
//     answer with 1007 (a fragmented text message is checked by the guard
//     as its fragments arrive).

// acceptUTF8 replaces nbio's CheckUtf8, which would answer 1002.
func acceptUTF8([]byte) bool { return true }

// guardHandshake wraps the upgrade handler.
func (g *Gateway) guardHandshake(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if refusal := frameguard.CheckHandshake(r); refusal != nil {
			g.m.UpgradeFailed(metrics.UpgradeBadHandshake)
			refusal.Write(w)
			return
		}
		g.guardConn(w, r)
		next(w, r)
	}
}

// guardConn makes the guard the data handler of the connection under w.
// It runs before the 101 response is written, so every byte the client
// sends after the handshake goes through the guard. The handler is one
// func value for all connections (scanData); a connection's guard state is
// in its session, which exists before the guard's first scan: the edge
// holds the bytes that follow the upgrade request until its handler
// (which creates the session) has run (edge.go).
func (g *Gateway) guardConn(w http.ResponseWriter, _ *http.Request) {
	resp, ok := w.(*nbhttp.Response)
	if !ok || resp.Parser == nil {
		return
	}
	var conn net.Conn = resp.Parser.Conn
	if hc, ok := conn.(*nbhttp.Conn); ok {
		conn = hc.Conn
	}
	nbc, ok := conn.(*nbio.Conn)
	if !ok {
		return // TLS: nbio's handler decrypts first
	}
	nbc.OnData(g.guardData)
	// Publish the handler to the poller goroutine, which loads handoff
	// before every read (see New).
	g.handoff.Add(1)
}

// FramesPerMessage is how many frames of any kind a connection may send
// per message the message rate allows it (-max-msg-rate, -max-msg-burst):
// room for fragments, pings and pongs, while a flood of frames that make
// no message (empty continuations, pongs) is cut off at a few hundred a
// second instead of costing a core.
const FramesPerMessage = 8

// frameLimits are the guard's limits for cfg: its message cap, and a frame
// budget of FramesPerMessage times the message rate and burst (none when
// the message rate is off).
func frameLimits(cfg *Config) *frameguard.Limits {
	lim := &frameguard.Limits{MaxMessage: cfg.MaxMessageBytes}
	if rate := orDefault(cfg.MaxMsgRate, DefaultMaxMsgRate); rate > 0 {
		burst := orDefault(cfg.MaxMsgBurst, max(2*rate, 1))
		lim.FrameRate, lim.FrameBurst = FramesPerMessage*rate, FramesPerMessage*max(burst, 1)
	}
	return lim
}

// scanData is every plain-TCP connection's data handler: it scans what
// the client sent with the connection's guard before nbio parses it. nbio
// runs a connection's handlers in order on its executor
// (nbio.Conn.Execute), and parsing queues the handlers of the messages
// parsed; so a job queued with ws.Execute after parsing a part of data runs
// after theirs.
func (g *Gateway) scanData(c *nbio.Conn, data []byte) {
	ws, ok := c.Session().(*websocket.Conn)
	if !ok { // still HTTP: the upgrade was refused, or is under way
		g.engine.DataHandler(c, data)
		return
	}
	s, _ := ws.Session().(*session)
	if s == nil { // not reached: the session is set before the edge lets bytes on
		g.engine.DataHandler(c, data)
		return
	}
	if s.failed {
		// The connection is failing: what follows is dropped. A client that
		// goes on sending after the close frame and FIN have left is cut off.
		if s.halfClosed.Load() && allSent(c) {
			_ = c.Close()
		}
		return
	}
	for len(data) > 0 {
		n, ev, err := s.fg.Scan(data)
		if n > 0 {
			g.engine.DataHandler(c, data[:n])
		}
		if err != nil {
			s.failed = true
			v := err.(*frameguard.Violation)
			// The failure runs after the upgrade handler and the messages
			// before the offending frame: by then the client is registered
			// with the hub (or the upgrade failed).
			ws.Execute(func() {
				if failConn(ws, v) {
					s.halfClosed.Store(true)
				}
			})
			return
		}
		if ev == frameguard.None {
			return
		}
		mt := websocket.TextMessage
		if ev == frameguard.EmptyBinary {
			mt = websocket.BinaryMessage
		}
		ws.Execute(func() { g.onMessage(ws, mt, nil) })
		data = data[n:]
	}
}

// failConn fails the connection (RFC 6455 §7.1.7) for v: a close frame
// with its code, then the TCP connection is closed at once, without
// waiting for the client's close. It reports whether the socket was left
// half-closed (see closeAfterFailing).
func failConn(ws *websocket.Conn, v *frameguard.Violation) (halfClosed bool) {
	cl := client(ws)
	if cl != nil {
		cl.CloseWith(hub.Violation(v.Code, v.Reason))
	} else {
		var b [2 + 2 + 123]byte
		_, _ = ws.Conn.Write(wire.AppendCloseFrame(b[:0], v.Code, v.Reason))
	}
	return closeAfterFailing(ws, cl != nil)
}

// closeAfterFailing closes the TCP connection behind the close frame just
// written. Closing a socket that still holds unread input makes the kernel
// send RST and drop what it has not sent yet, which may be that close
// frame (seen with a client flooding frames). So the write side is shut
// first (FIN after the close frame) and the socket closed at once (by its
// poller: pollerclose.go) only when no input is left unread; otherwise the
// client sees the close frame and EOF, and the socket closes when the
// client closes its side or, with registered (a client in the hub, whose
// close grace then applies), when the grace ends, or when the guard
// sees more input after the close frame and FIN have left (allSent). A
// close frame still queued in nbio (a client that stopped reading) is
// lost; RFC 6455 asks for it only as a SHOULD. It reports whether the
// socket was left half-closed.
func closeAfterFailing(ws *websocket.Conn, registered bool) bool {
	if c := nbioConn(ws.Conn); c != nil && registered {
		unread := 0
		withFD(c, func(fd int) {
			if unix.Shutdown(fd, unix.SHUT_WR) == nil {
				unread, _ = unix.IoctlGetInt(fd, unix.SIOCINQ)
			}
		})
		if unread > 0 {
			return true
		}
	}
	_ = ws.Close()
	return false
}

// allSent reports whether the kernel has sent everything written to c (so
// that closing it, even with unread input and so with RST, loses nothing).
func allSent(c *nbio.Conn) bool {
	unsent := -1
	withFD(c, func(fd int) {
		if n, err := unix.IoctlGetInt(fd, unix.SIOCOUTQNSD); err == nil {
			unsent = n
		}
	})
	return unsent == 0
}

// checkText wraps the message handler: a text message must be UTF-8
// (RFC 6455 §8.1), or the connection fails with 1007.
func (g *Gateway) checkText(next func(*websocket.Conn, websocket.MessageType, []byte)) func(*websocket.Conn, websocket.MessageType, []byte) {
	return func(c *websocket.Conn, mt websocket.MessageType, data []byte) {
		if mt == websocket.TextMessage && !utf8.Valid(data) {
			failConn(c, frameguard.ErrInvalidUTF8)
			return
		}
		next(c, mt, data)
	}
}

// checkCloseFrame wraps the close-frame handler: a close reason must be
// UTF-8 (1007), and 1015 may not be sent (1002); nbio has refused the
// other invalid codes with 1002 already.
func (g *Gateway) checkCloseFrame(next func(*websocket.Conn, int, string)) func(*websocket.Conn, int, string) {
	return func(c *websocket.Conn, code int, reason string) {
		cl := client(c)
		switch {
		case cl == nil:
		case !utf8.ValidString(reason):
			cl.CloseWith(hub.CloseBadCloseText)
			return
		case code == 1015:
			cl.CloseWith(hub.CloseBadCloseCode)
			return
		}
		next(c, code, reason)
	}
}
