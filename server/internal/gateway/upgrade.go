package gateway

import (
	"net/http"
	"reflect"
	"strings"
	"syscall"
	"unsafe"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"

	"wspush/server/internal/metrics"
)

// The upgrade handler, and the one segment its 101 and welcome go out in.
//
// nbio's Upgrader writes the 101 response itself (commResponse, one
// write(2)), then calls OnOpen, where the welcome is written (a second
// write(2)). Two writes on a TCP_NODELAY socket are two segments: two
// loopback or NIC transmits, two receive softirqs and possibly two wake-ups
// of the client, for some 200 bytes. When the welcome follows at once (no
// connect hook holds it back), the handler sets TCP_CORK on a plain-TCP
// socket before the upgrade and clears it after: the kernel keeps both
// writes and sends them as one segment when the cork comes off. Every path
// clears it — a refused upgrade (whose answer nbio writes after the
// handler returns), a failed 101 write (nbio has closed the socket: nothing
// is done) — since a forgotten cork holds the socket's output for 200 ms.
// The cork is set and cleared under the nbio connection's lock, only while
// it is not marked closed, as a direct write is (directwrite.go): the
// descriptor cannot have been closed and reused meanwhile. TLS connections
// are not corked (their writes are TLS records through nbio's TLS layer).

func (g *Gateway) upgrade(w http.ResponseWriter, r *http.Request) {
	if g.draining.Load() {
		g.m.UpgradeFailed(metrics.UpgradeShuttingDown)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	grant, ip, ok := g.admit(w, r)
	if !ok {
		return
	}
	if !g.reserve(w, ip) {
		return
	}
	corked := g.cork(w)
	c, err := g.upgrader.Upgrade(w, r, nil)
	if corked != nil {
		setCork(corked, false) // the 101 and the welcome (onOpen) go out together
	}
	if err != nil {
		// The upgrader has answered with 400 (or 403 for a bad origin).
		g.reserved.Add(-1)
		g.acc.perIP.Release(ip)
		g.m.UpgradeFailed(upgradeFailure(err))
		return
	}
	deflate := g.cfg.Compression && offersDeflate(r.Header)
	if s := sessionOf(c); s != nil {
		// Before the guard's first scan: the edge holds what the client
		// sends after the handshake until this handler has returned.
		s.fg.Reset(g.frames, deflate)
	}
	if !g.connectHook(c, r, grant, ip) { // hooks.go: with a connect hook the backend grants
		g.opened(c, grant, ip)
	}
	if deflate {
		if cl := client(c); cl != nil {
			cl.SetCompress()
		}
	}
}

// offersDeflate reports whether the client offered permessage-deflate,
// which nbio then accepts (with no context takeover either way).
func offersDeflate(h http.Header) bool {
	for _, v := range h.Values("Sec-Websocket-Extensions") {
		for _, ext := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(ext, ";")
			if strings.TrimSpace(name) == "permessage-deflate" {
				return true
			}
		}
	}
	return false
}

// cork sets TCP_CORK on the plain-TCP socket under w when the welcome will
// follow the 101 at once, and returns its connection (nil: not corked).
func (g *Gateway) cork(w http.ResponseWriter) *nbio.Conn {
	if g.hooks.connect != nil || !g.edge.plain || !layout.ok {
		return nil
	}
	resp, ok := w.(*nbhttp.Response)
	if !ok || resp.Parser == nil {
		return nil
	}
	c := nbioConn(resp.Parser.Conn)
	if c == nil || !setCork(c, true) {
		return nil
	}
	return c
}

// setCork sets or clears TCP_CORK on c's socket unless c is closed, and
// reports whether it did. It is a raw system call, as a direct write is:
// setsockopt does not block.
func setCork(c *nbio.Conn, on bool) bool {
	var v int32
	if on {
		v = 1
	}
	c.Lock()
	defer c.Unlock()
	if closed, _ := c.IsClosed(); closed {
		return false
	}
	fd := reflect.ValueOf(c).Elem().Field(layout.fd).Int()
	_, _, e := syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, uintptr(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK,
		uintptr(unsafe.Pointer(&v)), unsafe.Sizeof(v), 0)
	return e == 0
}
