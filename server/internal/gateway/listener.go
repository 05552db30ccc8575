package gateway

import (
	"net"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// listener lets the gateway stop accepting without stopping nbio: nbio's
// accept loop retries on every Accept error until the engine shuts down,
// so after stop, Accept waits for Close instead of failing at once.
type listener struct {
	net.Listener
	stopOnce  sync.Once
	closeOnce sync.Once
	stopped   chan struct{}
	closed    chan struct{}
}

func newListener(ln net.Listener) *listener {
	return &listener{Listener: ln, stopped: make(chan struct{}), closed: make(chan struct{})}
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		select {
		case <-l.stopped:
			<-l.closed
			return nil, net.ErrClosed
		default:
		}
	}
	return c, err
}

// stop closes the socket; Accept then waits for Close.
func (l *listener) stop() {
	l.stopOnce.Do(func() {
		close(l.stopped)
		_ = l.Listener.Close()
	})
}

func (l *listener) Close() error {
	l.stop()
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

func nbioCPUs() int { return runtime.NumCPU() }
