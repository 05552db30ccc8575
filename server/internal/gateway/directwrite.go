package gateway

import (
	"errors"
	"net"
	"reflect"
	"sync"
	"syscall"
	"unsafe"

	"github.com/lesismal/nbio"
	"golang.org/x/sys/unix"
)

// Direct writes: a plain-TCP connection's frames go out with a raw
// write(2) instead of nbio.Conn.Write.
//
// Why. nbio writes with syscall.Write, which tells the Go runtime that the
// goroutine is in a system call. The runtime's sysmon then finds the
// writer's P "in a syscall" during bursts of pushes, takes it away and
// hands it to another thread, and keeps itself at its shortest sleep
// (20 µs) while it does: at 40k pushes/s on one core that was ~60k context
// switches and ~25k nanosleeps per 10 s, ≈ 4 µs of CPU per push
// (docs/profiling.md, "Kernel side"). A write(2) on a non-blocking socket
// never blocks, so it can go as a raw system call (the floor peer's way):
// the P stays the writer's, sysmon stays asleep.
//
// Safety against descriptor reuse. nbio's poller closes a connection's
// descriptor on EOF or an error, from its own goroutine: closeWithError
// marks the connection closed under the connection's lock, unlocks, and
// only then closes the descriptor. A direct write holds that same lock
// (nbio.Conn.Lock, public) and writes only if the connection is not
// marked closed (IsClosed, public): the descriptor cannot have been closed,
// so its number cannot belong to another connection yet (withFD in
// pollerclose.go relies on the same).
//
// Order. nbio queues what a socket did not take (its writeList) and
// flushes it on EPOLLOUT. A direct write is made only when that queue is
// empty, under the same lock, so no queued byte of the connection can be
// overtaken; with anything queued the frame goes through nbio.Conn.Write,
// behind the queue. A short direct write leaves a frame half sent: its
// rest must be queued before any other frame of the connection. nbio has
// no call to queue under a lock the caller holds, so the rest goes through
// nbio.Conn.Write after the lock is released, and every writer of the
// connection holds one of writeLocks (by the connection's hash) around the
// whole write: no other frame can come between the two parts. Every write
// of an upgraded plain-TCP connection is made here: the hub's (through
// WriteDirect) and the websocket.Conn's (its net.Conn is the pollerConn:
// pollerClosed), including nbio's own close frames; nbio's poller only
// flushes the queue. The upgrade response goes before the connection is
// handed to anyone that writes here, and whatever of it was queued is seen
// as queued.
//
// nbio v1.6.8 exports neither the descriptor nor the queue's length; both
// are read from nbio.Conn's fields (fd, writeList), found by name and type
// when the package starts (nbioLayout). If they are not there (another nbio
// version), every write goes through nbio.Conn.Write as before;
// TestDirectWriteLayout fails then, so the change is seen.

// writeLocks serialize the writers of a connection for the time of one
// write (see above). Striped by the connection's hash (its descriptor), on
// their own cache lines: a write takes one briefly and uncontended, and no
// connection pays a lock of its own in memory.
var writeLocks [256]struct {
	sync.Mutex
	_ [64 - unsafe.Sizeof(sync.Mutex{})]byte
}

// nbioLayout locates the two unexported fields of nbio.Conn that a direct
// write reads under the connection's lock.
type nbioLayout struct {
	ok        bool
	fd        int // index of the descriptor (int)
	writeList int // index of the queue of unsent buffers (a slice)
}

var layout = findLayout()

// shortWriteHook, set only by tests, runs after a short direct write and
// before its rest is queued.
var shortWriteHook func()

func findLayout() nbioLayout {
	t := reflect.TypeFor[nbio.Conn]()
	fd, ok1 := t.FieldByName("fd")
	wl, ok2 := t.FieldByName("writeList")
	if !ok1 || !ok2 || len(fd.Index) != 1 || len(wl.Index) != 1 ||
		fd.Type.Kind() != reflect.Int || wl.Type.Kind() != reflect.Slice {
		return nbioLayout{}
	}
	return nbioLayout{ok: true, fd: fd.Index[0], writeList: wl.Index[0]}
}

// Write writes b whole (see WriteDirect); the bytes are not counted for any
// client: the websocket.Conn's own frames and the SSE head go this way.
func (c pollerConn) Write(b []byte) (int, error) {
	if _, err := c.WriteDirect(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// WriteDirect writes b whole and in order: directly with write(2) when
// nbio has nothing queued for the connection, the rest (or all of it,
// behind the queue) through nbio.Conn.Write, which buffers what the socket
// does not take. It returns the bytes the direct write sent, which nbio's
// OnWrittenSize callback does not see (it sees the rest). A failed direct
// write shuts the socket down for its poller to close (pollerclose.go),
// where nbio would close it on this goroutine. It implements
// hub.DirectConn.
func (c pollerConn) WriteDirect(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if !layout.ok {
		_, err := c.Conn.Write(b)
		return 0, err
	}
	l := &writeLocks[uint(c.Hash())%uint(len(writeLocks))]
	l.Lock()
	defer l.Unlock()
	c.Lock()
	if closed, _ := c.IsClosed(); closed {
		c.Unlock()
		return 0, net.ErrClosed
	}
	v := reflect.ValueOf(c.Conn).Elem()
	if v.Field(layout.writeList).Len() != 0 {
		c.Unlock()
		_, err := c.Conn.Write(b)
		return 0, err
	}
	fd := int(v.Field(layout.fd).Int())
	n, err := rawWrite(fd, b)
	if err != nil && !errors.Is(err, syscall.EAGAIN) {
		_ = unix.Shutdown(fd, unix.SHUT_RDWR)
		c.Unlock()
		return 0, err
	}
	c.Unlock()
	if n == len(b) {
		return n, nil
	}
	// The socket is full: queue the rest, which nothing can overtake while
	// this write holds l.
	if shortWriteHook != nil {
		shortWriteHook()
	}
	if _, err := c.Conn.Write(b[n:]); err != nil {
		return 0, err
	}
	return n, nil
}

// rawWrite is write(2) as a raw system call (the runtime is not told): the
// socket is non-blocking, so it returns at once. It never returns a
// negative count.
func rawWrite(fd int, b []byte) (int, error) {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		}
		return 0, e
	}
}
