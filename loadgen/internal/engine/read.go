package engine

import (
	"syscall"
	"time"
	"unsafe"

	"github.com/lesismal/nbio"
)

// readBufSize is each poller's read buffer: one read takes what a socket
// holds up to this much; a full read is followed by another (up to
// maxReadsPerEvent), as nbio does.
const (
	readBufSize      = 32 << 10
	maxReadsPerEvent = 3
	// idleGap: a read this long after the poller's previous one means the
	// poller had been waiting in epoll_wait (it was idle) — the moment the
	// ReadBatch pause applies.
	idleGap = 50 * time.Microsecond
)

// pollerState belongs to one poller goroutine (index = Conn.Shard).
type pollerState struct {
	buf    []byte
	last   int64 // Unix ns of the previous read
	paused int64 // Unix ns when the previous ReadBatch pause ended
	_      [64 - 8]byte
}

// onRead replaces nbio's read loop for one readable socket (nbio calls it
// on the socket's poller goroutine for each epoll event). It is what wsload
// pays per received message, so it is kept to one read(2) and the parse:
//
//   - the read is a raw system call into the poller's own buffer: no
//     entersyscall/exitsyscall (a non-blocking read does not block, and the
//     runtime's syscall bookkeeping was 5–10 % of wsload's CPU, with sysmon
//     waking to retake a P around every read);
//   - with Config.ReadBatch, a poller that wakes from an idle wait pauses
//     that long (at most once per ReadBatch) before it reads, so the
//     messages of the next ReadBatch are read in one epoll_wait batch
//     instead of one wake-up (two context switches) per one or two
//     messages. That adds at most ReadBatch to the lag wsload measures
//     and is never taken while the poller is busy (reads back to back).
//
// The socket is read under nbio's connection lock after checking it is not
// closed, as nbio's own ReadAndGetConn does: a descriptor closed elsewhere
// (a failed write) may already belong to a newer socket.
func (e *Engine) onRead(nc *nbio.Conn) {
	e.published.Load()
	c, _ := nc.Session().(*Conn)
	var p *pollerState
	if c != nil {
		p = &e.polls[int(c.Shard)%len(e.polls)]
	} else {
		p = &e.polls[nc.Hash()%len(e.polls)]
	}
	now := time.Now().UnixNano()
	if b := int64(e.cfg.ReadBatch); b > 0 && now-p.last > int64(idleGap) && now-p.paused >= b {
		rawSleep(b)
		now = time.Now().UnixNano()
		p.paused = now
	}
	if c != nil && e.cfg.PollerThread != nil {
		e.cfg.PollerThread(int(c.Shard))
	}
	buf := p.buf
	for range maxReadsPerEvent {
		nc.Lock()
		if closed, _ := nc.IsClosed(); closed {
			nc.Unlock()
			return
		}
		n, errno := rawRead(nc.Hash(), buf)
		nc.Unlock()
		if errno != 0 {
			if errno == syscall.EINTR {
				continue
			}
			if errno != syscall.EAGAIN {
				_ = nc.CloseWithError(errno)
			}
			break
		}
		if n == 0 {
			break // end of stream: the hang-up event that came with it closes the socket
		}
		now = time.Now().UnixNano()
		if c != nil {
			e.deliver(c, nc, buf[:n], now)
		}
		if n < len(buf) {
			break
		}
	}
	p.last = now
}

// deliver feeds one read to the connection's parser; a protocol error
// closes it.
func (e *Engine) deliver(c *Conn, nc *nbio.Conn, data []byte, now int64) {
	if d := c.hs.Load(); d != nil {
		e.upgradeRead(c, d, nc, data, now) // dialasync.go
		return
	}
	if err := c.feed(data, now, e.cfg.Handler, e.cfg.MaxMessage); err != nil {
		c.closeErr.CompareAndSwap(nil, &errBox{err})
		_ = nc.Close()
	}
}

// rawRead is read(2) without the runtime's system-call bookkeeping; fd is
// non-blocking, so it never blocks the thread.
func rawRead(fd int, b []byte) (int, syscall.Errno) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if errno != 0 {
		return 0, errno
	}
	return int(r), 0
}

// rawSleep sleeps ns on this thread, holding its P: the runtime does not
// hand the P to another thread for so short a pause (with Syscall it would,
// and the hand-over and back cost more context switches than the pause
// saves). Other goroutines wait at most ns.
func rawSleep(ns int64) {
	ts := syscall.NsecToTimespec(ns)
	_, _, _ = syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
}
