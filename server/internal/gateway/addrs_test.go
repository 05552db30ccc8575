package gateway

import (
	"net"
	"testing"
	"unsafe"

	"github.com/lesismal/nbio"

	"wspush/server/internal/frameguard"
)

// TestCompactAddrsFindsNbioFields fails when nbio's Conn no longer has the
// two net.Addr fields compactAddrs rewrites (a newer nbio): then every
// connection keeps nbio's 160 B of addresses again.
func TestCompactAddrsFindsNbioFields(t *testing.T) {
	if !nbioAddrFields.ok {
		t.Fatal("nbio.Conn has no lAddr/rAddr net.Addr fields: compactAddrs does nothing")
	}
}

// TestCompactAddrs takes a real accepted socket through nbio.NBConn, as
// nbio's accept loop does, and packs its addresses: they print as before
// and cost 8 B each instead of nbio's 80.
func TestCompactAddrs(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c, err := nbio.NBConn(sc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local, remote := c.LocalAddr().String(), c.RemoteAddr().String()
	if remote != cc.LocalAddr().String() || local != cc.RemoteAddr().String() {
		t.Fatalf("nbio addresses %s %s, want %s %s", local, remote, cc.RemoteAddr(), cc.LocalAddr())
	}
	compactAddrs(c)
	for _, a := range []net.Addr{c.LocalAddr(), c.RemoteAddr()} {
		if _, ok := a.(inet4Addr); !ok {
			t.Fatalf("address %v is a %T after compactAddrs, want inet4Addr", a, a)
		}
		if a.Network() != "tcp" {
			t.Fatalf("network %q, want tcp", a.Network())
		}
	}
	if got := c.LocalAddr().String(); got != local {
		t.Fatalf("local address %s after compactAddrs, was %s", got, local)
	}
	if got := c.RemoteAddr().String(); got != remote {
		t.Fatalf("remote address %s after compactAddrs, was %s", got, remote)
	}
}

func TestPackAddr(t *testing.T) {
	for _, tc := range []struct {
		a    *net.TCPAddr
		want string // "" = not packed
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "127.0.0.1:8080"},
		{&net.TCPAddr{IP: net.IPv4(255, 254, 253, 252).To4(), Port: 65535}, "255.254.253.252:65535"},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 0}, "10.0.0.1:0"},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 80}, ""},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "eth0"}, ""},
	} {
		p, ok := packAddr(tc.a)
		switch {
		case tc.want == "" && ok:
			t.Errorf("%v packed as %v, want it kept", tc.a, p)
		case tc.want != "" && !ok:
			t.Errorf("%v not packed", tc.a)
		case ok && (p.String() != tc.want || p.String() != tc.a.String()):
			t.Errorf("%v packed prints %s, want %s", tc.a, p, tc.want)
		}
	}
	if _, ok := packAddr(&net.UnixAddr{Name: "/x", Net: "unix"}); ok {
		t.Error("a unix address was packed")
	}
}

// TestSessionSizeClass keeps the session, every connection's one gateway
// allocation, in the 240 B size class (it was 280 B, in the 288 B class):
// rarely used state is in sessionExtra, the guard keeps no copy of its
// message cap.
func TestSessionSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(session{}); n > 240 {
		t.Fatalf("session is %d B, want at most 240 (Go's size classes: 224, 240, 256, 288)", n)
	}
	if n := unsafe.Sizeof(frameguard.Guard{}); n > 72 {
		t.Fatalf("frameguard.Guard is %d B, want at most 72", n)
	}
}
