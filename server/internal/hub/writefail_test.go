package hub

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"wspush/server/internal/metrics"
)

// failConn fails every write with err.
type failConn struct{ err error }

func (f failConn) Write([]byte) (int, error) { return -1, f.err }
func (f failConn) Close() error              { return nil }

// A write that finds the socket already closed, or the peer gone, is the
// client's ordinary close ("client"); any other failed write is a
// write_error.
func TestSendFailureReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{net.ErrClosed, metrics.ClosedByClient},
		{fmt.Errorf("write: %w", net.ErrClosed), metrics.ClosedByClient},
		{syscall.EPIPE, metrics.ClosedByClient},
		{os.NewSyscallError("write", syscall.ECONNRESET), metrics.ClosedByClient},
		{syscall.EIO, metrics.ClosedWriteError},
	} {
		h := newHub(t, Config{PushInterval: time.Second})
		c := h.NewClient(failConn{tc.err})
		h.Register(c)
		if c.Send([]byte{0x81, 0}) {
			t.Fatalf("%v: Send reported success", tc.err)
		}
		h.Unregister(c)
		if got := h.m.ClosedCount(tc.want); got != 1 {
			t.Errorf("%v: %s closes = %d, want 1 (client %d, write_error %d)", tc.err, tc.want, got,
				h.m.ClosedCount(metrics.ClosedByClient), h.m.ClosedCount(metrics.ClosedWriteError))
		}
	}
}
