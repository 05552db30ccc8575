package gateway

import (
	"cmp"
	"log/slog"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// File-descriptor budget. Every client socket is a file, before and after
// its upgrade, and so are the admin listener and its connections, the NATS
// connection, nbio's epoll and event descriptors, log and profile files.
// The defaults keep a reserve of the process's RLIMIT_NOFILE for those:
//
//	reserve          = max(64, nofile/64)     (312 of 20,000; 16,384 of 1,048,576)
//	default MaxConns = nofile - reserve       (19,688 of 20,000)
//	open sockets cap = min(MaxConns + reserve/4, nofile - reserve/2)
//
// MaxConns caps upgraded connections (over it an upgrade gets an HTTP
// 503); the sockets cap adds a little room for connections still in their
// handshake, and never reaches into the last half of the reserve, whatever
// MaxConns is set to. A socket over it is answered with a raw 503 and
// closed at accept, so that the files come back at once and the admin
// listener can still accept.

// maxNofile bounds the limit used (nbio's own file table stops at 2M).
const maxNofile = 1 << 21

// FileReserve is how many of nofile descriptors are kept from clients.
func FileReserve(nofile int) int { return max(64, nofile/64) }

// MaxConnsFor is the default MaxConns for a file limit of nofile.
func MaxConnsFor(nofile int) int {
	nofile = min(nofile, maxNofile)
	return max(1, nofile-FileReserve(nofile))
}

// socketsCap is the cap on open client sockets for maxConns under nofile.
func socketsCap(maxConns, nofile int) int {
	nofile = min(nofile, maxNofile)
	r := FileReserve(nofile)
	return max(1, min(maxConns+r/4, nofile-r/2))
}

// FileLimit returns the process's RLIMIT_NOFILE (the soft limit, which Go
// raises to the hard one at start).
func FileLimit() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > maxNofile {
		return maxNofile
	}
	return int(rl.Cur)
}

// DefaultMaxConns is MaxConns' default for this process.
func DefaultMaxConns() int { return MaxConnsFor(FileLimit()) }

// refuseSocket answers a socket over the cap with a raw 503 and closes it.
// The write fits in a fresh socket's buffer, so it does not block; input
// already there is read first, so that the close is a FIN, not a reset
// that could destroy the answer.
func refuseSocket(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { refuseFD(int(fd)) })
		}
	}
	_ = c.Close()
}

// refusal503 is the answer to a socket over the cap.
const refusal503 = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Connection: close\r\nContent-Length: 39\r\n\r\nserver is at its connection limit; retry"

// refuseFD writes refuseSocket's 503 to the socket fd, shuts its write
// side and reads what the client sent (so that closing does not reset);
// the caller closes fd.
func refuseFD(fd int) {
	_, _ = unix.Write(fd, []byte(refusal503+"\n"))
	_ = unix.Shutdown(fd, unix.SHUT_WR)
	var buf [4096]byte
	for i := 0; i < 16; i++ { // at most 64 KiB
		if n, err := unix.Read(fd, buf[:]); n <= 0 || err != nil {
			break
		}
	}
}

// acceptErrors logs failed accepts at most once per acceptLogEvery, with
// the number of failures since, and backs off between retries. Only the
// listener's accept goroutine uses it.
type acceptErrors struct {
	log     *slog.Logger // nil: slog.Default()
	backoff time.Duration
	count   int // failures not logged yet
	logged  time.Time
}

const (
	acceptLogEvery   = 5 * time.Second
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = 200 * time.Millisecond
)

func (a *acceptErrors) failed(err error, stop <-chan struct{}) {
	a.count++
	if now := time.Now(); now.Sub(a.logged) >= acceptLogEvery {
		cmp.Or(a.log, slog.Default()).Error("gateway: accept failed; retrying with backoff", "err", err, "failures", a.count)
		a.logged, a.count = now, 0
	}
	a.backoff = min(max(2*a.backoff, acceptBackoffMin), acceptBackoffMax)
	t := time.NewTimer(a.backoff)
	select {
	case <-t.C:
	case <-stop:
		t.Stop()
	}
}

func (a *acceptErrors) ok() { a.backoff = 0 }
