package engine

import (
	"fmt"
	"io"
	"syscall"
	"testing"
)

func TestCloseClass(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{ErrClosedByClient, ""},
		{&CloseError{Code: 1001}, "server_close_1001"},
		{fmt.Errorf("%w: bad frame", ErrProtocol), "protocol_error"},
		{syscall.ECONNRESET, "reset"},
		{io.EOF, "eof"},
		{syscall.ETIMEDOUT, "timeout"},
		{fmt.Errorf("read: %w", syscall.EHOSTUNREACH), "errno_113"},
		{fmt.Errorf("something else"), "other"},
	} {
		if got := CloseClass(c.err); got != c.want {
			t.Errorf("CloseClass(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
