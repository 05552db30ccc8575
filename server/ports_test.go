package main

import (
	"net"
	"testing"
)

// freeAddrs returns n distinct host:port addresses on host whose ports were
// free a moment ago. Every listener is held until all n are chosen: picking
// them one at a time (listen, close, listen again) can return the same port
// twice.
func freeAddrs(t *testing.T, host string, n int) []string {
	t.Helper()
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

func TestFreeAddrsAreDistinct(t *testing.T) {
	addrs := freeAddrs(t, "127.0.0.1", 50)
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("freeAddrs returned %s twice: %v", a, addrs)
		}
		seen[a] = true
	}
}
