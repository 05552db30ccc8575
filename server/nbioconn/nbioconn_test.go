package nbioconn

import (
	"net"
	"syscall"
	"testing"

	"github.com/lesismal/nbio"
)

// With the nbio version in go.mod the fields must be found, or the raw
// accept and the raw dial silently go nbio's slower ways again.
func TestLayout(t *testing.T) {
	if !OK() {
		t.Fatal("nbio.Conn has no fd int and typ ConnType fields: raw accepts and raw dials are off")
	}
}

// A Conn built for a connected socket is what nbio would see: type TCP,
// the descriptor as its hash, and nbio.NBConn keeps it as it is.
func TestNewIsNbiosConn(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	port := ln.Addr().(*net.TCPAddr).Port
	if err := syscall.Connect(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	c := New(fd)
	if c == nil || c.Type() != nbio.ConnTypeTCP || c.Hash() != fd {
		t.Fatalf("New(%d): %v", fd, c)
	}
	if c2, err := nbio.NBConn(c); err != nil || c2 != c {
		t.Fatalf("nbio.NBConn: %p %v, want the same conn %p", c2, err, c)
	}
}
