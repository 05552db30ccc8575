package gateway

import (
	"net"
	"net/http"
	"unicode/utf8"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"wspush/server/internal/frameguard"
	"wspush/server/internal/metrics"
	"wspush/server/wire"
)

// This file hooks the frame guard (RFC 6455 checks nbio does not make, or
// answers with the wrong close code) into the gateway:
//
//   - guardHandshake refuses malformed opening handshakes (400, 405, 426)
//     and gives each plain-TCP connection that goes on to upgrade its own
//     data handler, a connGuard, in place of nbio's: it runs the header
//     scanner over the bytes on the poller goroutine before nbio parses
//     them. TLS connections keep nbio's handler (their bytes are
//     ciphertext at that point) and get nbio's own checks.
//   - nbio's UTF-8 check is turned off (it answers with 1002); checkText and
//     checkCloseFrame check text messages and close reasons instead, and
//     answer with 1007.

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

// guardConn gives the connection under w a fresh connGuard as its data
// handler. It runs before the 101 response is written, so every byte the
// client sends after the handshake goes through the guard.
func (g *Gateway) guardConn(w http.ResponseWriter, r *http.Request) {
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
	cg := &connGuard{next: g.engine.DataHandler}
	cg.fg.Reset(g.cfg.MaxMessageBytes, g.cfg.Compression && offersDeflate(r.Header))
	nbc.OnData(cg.onData)
	// Publish cg to the poller goroutine, which loads handoff before every
	// read (see New).
	g.handoff.Add(1)
}

// connGuard is one connection's data handler; only its poller goroutine
// calls it.
type connGuard struct {
	next   func(c *nbio.Conn, data []byte)
	fg     frameguard.Guard
	failed bool
}

func (cg *connGuard) onData(c *nbio.Conn, data []byte) {
	ws, ok := c.Session().(*websocket.Conn)
	if !ok { // still HTTP: the upgrade was refused, or is under way
		cg.next(c, data)
		return
	}
	if cg.failed {
		// The close frame is out; what follows is dropped. Once the client
		// answers with its close, the server closes the socket.
		if cg.fg.Drain(data) {
			ws.Execute(func() { _ = c.Close() })
		}
		return
	}
	n, err := cg.fg.Scan(data)
	if err == nil {
		cg.next(c, data)
		return
	}
	cg.failed = true
	v := err.(*frameguard.Violation)
	closeNow := cg.fg.Drain(data[n:])
	// The close runs on the connection's executor, after the upgrade
	// handler: by then the client is registered with the hub (or the
	// upgrade failed), and later closes queue behind this one.
	ws.Execute(func() { failConn(ws, c, v, closeNow) })
}

// failConn answers a violation: a close frame with its code, then the
// socket is closed once the client answers (closeNow: it already has) or
// the hub's close grace ends.
func failConn(ws *websocket.Conn, c *nbio.Conn, v *frameguard.Violation, closeNow bool) {
	why := metrics.ClosedProtocol
	if v.Code == frameguard.CodeTooBig {
		why = metrics.ClosedTooBig
	}
	if cl := client(ws); cl != nil {
		cl.CloseWith(v.Code, v.Reason, why)
	} else {
		var b [2 + 2 + 123]byte
		_, _ = c.Write(wire.AppendCloseFrame(b[:0], v.Code, v.Reason))
		closeNow = true
	}
	if closeNow {
		_ = c.Close()
	}
}

// checkText wraps the message handler: a text message must be UTF-8
// (RFC 6455 §8.1), or the connection closes with 1007.
func (g *Gateway) checkText(next func(*websocket.Conn, websocket.MessageType, []byte)) func(*websocket.Conn, websocket.MessageType, []byte) {
	return func(c *websocket.Conn, mt websocket.MessageType, data []byte) {
		if mt == websocket.TextMessage && !utf8.Valid(data) {
			if cl := client(c); cl != nil {
				cl.CloseWith(wire.CloseInvalidPayload, "text message is not UTF-8", metrics.ClosedProtocol)
			}
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
			cl.CloseWith(wire.CloseInvalidPayload, "close reason is not UTF-8", metrics.ClosedProtocol)
			return
		case code == 1015:
			cl.CloseWith(wire.CloseProtocolError, "close code 1015 may not be sent", metrics.ClosedProtocol)
			return
		}
		next(c, code, reason)
	}
}
