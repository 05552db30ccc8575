package gateway

import (
	"net"
	"net/netip"
	"reflect"
	"unsafe"

	"github.com/lesismal/nbio"
)

// This file shrinks the two addresses nbio keeps per connection.
//
// nbio v1.6.8 makes an accepted socket its own with nbio.NBConn, which
// keeps the standard library's LocalAddr and RemoteAddr for the
// connection's life (nbio.Conn's lAddr and rAddr). Each is a *net.TCPAddr
// (48 B) whose IP slice points into the syscall.SockaddrInet4 the accept
// resolved (32 B): 160 B per connection, the largest of nbio's per-
// connection objects after its Conn and websocket.Conn. nbio has no setter
// for them, so after the upgrade (onOpen) the gateway replaces an IPv4
// pair with packed values, 8 B each, that print the same ("a.b.c.d:port")
// and say "tcp": RemoteAddr().String() is unchanged for everything that
// reads it later (logs, the per-IP count's release). IPv6 addresses and
// TLS connections keep nbio's.
//
// The fields are found by name and type with reflect when the package is
// initialised; if a later nbio renames or retypes them, compactAddrs does
// nothing (and TestCompactAddrsFindsNbioFields fails). The write happens
// on the upgrade handler's goroutine, when no other goroutine reads the
// addresses: the poller reads them only to parse an HTTP request, and the
// edge hands the bytes after an upgrade request to the WebSocket side.

// inet4Addr is an IPv4 TCP address packed into 48 bits: the address in
// bits 16-47, the port in bits 0-15.
type inet4Addr uint64

func (a inet4Addr) Network() string { return "tcp" }

func (a inet4Addr) String() string { return a.addrPort().String() }

func (a inet4Addr) addrPort() netip.AddrPort {
	v := uint32(a >> 16)
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), uint16(a))
}

// packAddr returns the packed form of an IPv4 *net.TCPAddr.
func packAddr(a net.Addr) (net.Addr, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.Zone != "" || ta.Port < 0 || ta.Port > 0xFFFF {
		return nil, false
	}
	ip4 := ta.IP.To4()
	if ip4 == nil {
		return nil, false
	}
	return pack4([4]byte(ip4), uint16(ta.Port)), true
}

// pack4 is the packed form of an IPv4 address and port.
func pack4(ip [4]byte, port uint16) inet4Addr {
	v := uint64(ip[0])<<24 | uint64(ip[1])<<16 | uint64(ip[2])<<8 | uint64(ip[3])
	return inet4Addr(v<<16 | uint64(port))
}

// nbioAddrFields are the offsets of nbio.Conn's lAddr and rAddr; ok is
// false if they are not both net.Addr fields.
var nbioAddrFields = func() (f struct {
	l, r uintptr
	ok   bool
}) {
	t := reflect.TypeFor[nbio.Conn]()
	addr := reflect.TypeFor[net.Addr]()
	l, okL := t.FieldByName("lAddr")
	r, okR := t.FieldByName("rAddr")
	if okL && okR && l.Type == addr && r.Type == addr {
		f.l, f.r, f.ok = l.Offset, r.Offset, true
	}
	return f
}()

// compactAddrs replaces c's IPv4 addresses with packed ones (see above).
// Only the upgrade handler calls it, before c's addresses are read again.
func compactAddrs(c *nbio.Conn) {
	if !nbioAddrFields.ok || c == nil {
		return
	}
	for _, off := range [2]uintptr{nbioAddrFields.l, nbioAddrFields.r} {
		p := (*net.Addr)(unsafe.Add(unsafe.Pointer(c), off))
		if a, ok := packAddr(*p); ok {
			*p = a
		}
	}
}
