package gateway

import (
	"testing"

	"github.com/lesismal/nbio"

	"wspush/server/internal/hub"
)

// The hub holds a pollerConn as its hub.Conn: one pointer, so neither
// storing it nor writing through it allocates (the push path stays at 0
// allocations).
func TestPollerConnIsPointerShaped(t *testing.T) {
	c := new(nbio.Conn)
	var sink hub.Conn
	if n := testing.AllocsPerRun(100, func() { sink = pollerConn{c} }); n != 0 {
		t.Fatalf("storing a pollerConn in a hub.Conn: %v allocations, want 0", n)
	}
	_ = sink
}
