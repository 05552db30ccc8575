package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	maxPending = 1 << 20  // unsent bytes a client may owe before it is dropped
	readBuf    = 64 << 10 // one read syscall's worth
	maxAccepts = 256      // accepts per loop turn, so ticks are not starved
	connEvents = unix.EPOLLIN | unix.EPOLLRDHUP
)

// conn is one client socket, owned by one shard.
type conn struct {
	fd       int
	upgraded bool
	in       []byte // unparsed input: the handshake or a partial frame
	msg      []byte // a fragmented message being put together
	msgOp    byte
	out      []byte // bytes a write could not take; EPOLLOUT is on while set
	seq      uint64
	slot     int32 // wheel slot (when upgraded)
	pos      int32 // index in that slot
}

// command is sent to a shard from another goroutine: a broadcast frame
// (answered on done with the number of clients it went to) or stop.
type command struct {
	frame []byte
	done  chan<- int
	stop  bool
}

// shard is one event loop: a listener, an epoll instance, its connections
// and their slot wheel. Everything but cmds, wakefd and count belongs to the
// loop's goroutine.
//
// The loop never blocks in epoll_wait: the epoll fd is itself registered
// with the Go runtime's poller (through an os.File), so the goroutine parks
// until the instance has events or the next slot's deadline passes, and
// then takes the events with a non-blocking epoll_wait. A goroutine blocked
// in a syscall instead would keep the runtime's sysmon waking every 20µs
// and handing Ps between threads, which costs more than the pushes.
type shard struct {
	srv     *server
	epfd    int
	ep      *os.File        // epfd, as the runtime poller sees it
	rc      syscall.RawConn // ep's, to wait for readiness
	lnfd    int
	wakefd  int // eventfd that says cmds has something
	spare   int // an fd to give up when out of files, to refuse a client
	cmds    chan command
	count   atomic.Int64 // upgraded connections, for /healthz
	conns   []*conn      // by fd
	wheel   [][]*conn    // slot → its connections
	lastAbs int64        // last slot processed
	rbuf    []byte
	tick    []byte // tick frame template: header and `{"type":"tick","seq":`
	suffix  []byte // the current slot's `,"due":…}`
	scratch []byte
}

const tickPrefix = `{"type":"tick","seq":`

func newShard(srv *server, lnfd int) (*shard, error) {
	s := &shard{srv: srv, lnfd: lnfd, epfd: -1, wakefd: -1, spare: -1, cmds: make(chan command, 16),
		wheel: make([][]*conn, srv.slots), rbuf: make([]byte, readBuf)}
	s.tick = append([]byte{0x80 | opText, 0}, tickPrefix...)
	s.lastAbs = srv.current(time.Since(srv.epoch))
	var err error
	if s.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("epoll_create: %w", err)
	}
	if err := unix.SetNonblock(s.epfd, true); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("epoll fd: %w", err)
	}
	s.ep = os.NewFile(uintptr(s.epfd), "epoll")
	if s.rc, err = s.ep.SyscallConn(); err == nil {
		err = s.ep.SetReadDeadline(time.Time{}) // fails unless the runtime polls it
	}
	if err != nil {
		s.closeAll()
		return nil, fmt.Errorf("epoll fd: %w", err)
	}
	if s.spare, err = unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("spare fd: %w", err)
	}
	if s.wakefd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	for _, fd := range []int{lnfd, s.wakefd} {
		if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			s.closeAll()
			return nil, fmt.Errorf("epoll_ctl: %w", err)
		}
	}
	return s, nil
}

// post hands a command to the loop and wakes it.
func (s *shard) post(c command) {
	s.cmds <- c
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(s.wakefd, one[:])
}

// loop runs the shard until a stop command.
func (s *shard) loop() error {
	events := make([]unix.EpollEvent, 256)
	var n int
	poll := func(uintptr) bool {
		n, _ = unix.EpollWait(s.epfd, events, 0)
		return n > 0
	}
	for {
		n = 0
		var err error
		if wait := s.timeout(); wait == 0 {
			poll(0)
		} else {
			deadline := time.Time{}
			if wait > 0 {
				deadline = time.Now().Add(wait)
			}
			if err = s.ep.SetReadDeadline(deadline); err == nil {
				err = s.rc.Read(poll)
			}
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			s.closeAll()
			return fmt.Errorf("epoll wait: %w", err)
		}
		for _, ev := range events[:max(n, 0)] {
			switch fd := int(ev.Fd); fd {
			case s.lnfd:
				s.accept()
			case s.wakefd:
				if s.commands() {
					s.closeAll()
					return nil
				}
			default:
				if fd >= len(s.conns) || s.conns[fd] == nil {
					continue
				}
				c := s.conns[fd]
				if ev.Events&unix.EPOLLOUT != 0 && !s.flush(c) {
					continue
				}
				if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
					s.read(c)
				}
			}
		}
		s.pushDue()
	}
}

// timeout is how long the loop may wait for events: until the next slot
// that has connections, or forever (-1) when there are none.
func (s *shard) timeout() time.Duration {
	if s.count.Load() == 0 {
		return -1
	}
	for abs := s.lastAbs + 1; abs <= s.lastAbs+s.srv.slots; abs++ {
		if len(s.wheel[abs%s.srv.slots]) != 0 {
			return max(s.srv.offset(abs)-time.Since(s.srv.epoch), 0)
		}
	}
	return -1
}

// pushDue sends the ticks of every slot that has come due since the last
// turn, at most one per slot.
func (s *shard) pushDue() {
	cur := s.srv.current(time.Since(s.srv.epoch))
	if cur-s.lastAbs > s.srv.slots {
		s.lastAbs = cur - s.srv.slots
	}
	for ; s.lastAbs < cur; s.lastAbs++ {
		abs := s.lastAbs + 1
		j := abs % s.srv.slots
		if len(s.wheel[j]) == 0 {
			continue
		}
		due := s.srv.epochUnix + int64(s.srv.offset(abs))
		s.suffix = append(strconv.AppendInt(append(s.suffix[:0], `,"due":`...), due, 10), '}')
		// Backwards, so that a connection dropped on a failed write (the
		// slot's last element, already done, moves into its place) leaves
		// no one out.
		for i := len(s.wheel[j]) - 1; i >= 0; i-- {
			if i >= len(s.wheel[j]) {
				continue
			}
			c := s.wheel[j][i]
			c.seq++
			b := append(strconv.AppendUint(s.tick, c.seq, 10), s.suffix...)
			b[1] = byte(len(b) - 2)
			s.tick = b[:len(tickPrefix)+2]
			s.send(c, b)
		}
	}
}

// commands runs what other goroutines posted; it reports a stop.
func (s *shard) commands() (stop bool) {
	var buf [8]byte
	_, _ = unix.Read(s.wakefd, buf[:])
	for {
		select {
		case c := <-s.cmds:
			if c.stop {
				return true
			}
			// Backwards within each slot, as in pushDue.
			n := 0
			for j := range s.wheel {
				for i := len(s.wheel[j]) - 1; i >= 0; i-- {
					if i < len(s.wheel[j]) && s.send(s.wheel[j][i], c.frame) {
						n++
					}
				}
			}
			c.done <- n
		default:
			return false
		}
	}
}

func (s *shard) accept() {
	for range maxAccepts {
		fd, _, err := unix.Accept4(s.lnfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
			// Out of files. The listener would stay readable and the loop
			// spin, so turn the connection away with the spare fd.
			_ = unix.Close(s.spare)
			if fd, _, err := unix.Accept4(s.lnfd, unix.SOCK_CLOEXEC); err == nil {
				_ = unix.Close(fd)
			}
			s.spare, _ = unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			return
		}
		if err != nil {
			return // EAGAIN
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: connEvents, Fd: int32(fd)}); err != nil {
			_ = unix.Close(fd)
			continue
		}
		for fd >= len(s.conns) {
			s.conns = append(s.conns, make([]*conn, len(s.conns)+64)...)
		}
		s.conns[fd] = &conn{fd: fd}
	}
}

// read takes what the socket has and acts on it.
func (s *shard) read(c *conn) {
	for c.fd >= 0 {
		n, err := unix.Read(c.fd, s.rbuf)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return
		case err != nil || n == 0:
			s.close(c)
			return
		}
		s.input(c, s.rbuf[:n])
		if n < len(s.rbuf) {
			return
		}
	}
}

// upgraded puts a connection that has had its handshake on the wheel, at
// the next phase of the van der Corput sequence.
func (s *shard) upgrade(c *conn) {
	k := s.srv.nextSlot.Add(1) - 1
	slot := int32(uint64(bits.Reverse32(k)) * uint64(s.srv.slots) >> 32)
	c.upgraded, c.slot, c.pos = true, slot, int32(len(s.wheel[slot]))
	s.wheel[slot] = append(s.wheel[slot], c)
	s.count.Add(1)
}

// send writes one frame with one write syscall; what the socket does not
// take waits in c.out for EPOLLOUT. It reports whether c is still open.
func (s *shard) send(c *conn, frame []byte) bool {
	if c.fd < 0 {
		return false
	}
	if len(c.out) > 0 {
		if len(c.out)+len(frame) > maxPending {
			s.close(c)
			return false
		}
		c.out = append(c.out, frame...)
		return true
	}
	n, err := write(c.fd, frame)
	for errors.Is(err, unix.EINTR) {
		n, err = write(c.fd, frame)
	}
	if err == nil && n == len(frame) {
		return true
	}
	if err != nil && !errors.Is(err, unix.EAGAIN) {
		s.close(c)
		return false
	}
	c.out = append(c.out[:0], frame[max(n, 0):]...)
	if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: connEvents | unix.EPOLLOUT, Fd: int32(c.fd)}); err != nil {
		s.close(c)
		return false
	}
	return true
}

// write is write(2) on a non-blocking socket, which never blocks, so it
// goes as a raw syscall: the runtime is not told, and its sysmon does not
// see a P sitting in a syscall during a burst of pushes and hand it to
// another thread.
func write(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

// flush writes what c owes; it reports whether c is still open.
func (s *shard) flush(c *conn) bool {
	for len(c.out) > 0 {
		n, err := write(c.fd, c.out)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return true
		case err != nil:
			s.close(c)
			return false
		}
		c.out = c.out[n:]
	}
	c.out = nil
	if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: connEvents, Fd: int32(c.fd)}); err != nil {
		s.close(c)
		return false
	}
	return true
}

// close drops a connection: off the wheel, out of the table, fd closed
// (which also takes it out of epoll).
func (s *shard) close(c *conn) {
	if c.fd < 0 {
		return
	}
	if c.upgraded {
		slot := s.wheel[c.slot]
		last := slot[len(slot)-1]
		slot[c.pos], last.pos = last, c.pos
		slot[len(slot)-1] = nil
		s.wheel[c.slot] = slot[:len(slot)-1]
		s.count.Add(-1)
	}
	s.conns[c.fd] = nil
	_ = unix.Close(c.fd)
	c.fd, c.in, c.msg, c.out = -1, nil, nil, nil
}

// closeAll says goodbye (1001) to every client and closes every fd.
func (s *shard) closeAll() {
	bye := appendFrame(nil, opClose, closePayload(1001, "server shutting down"))
	for _, c := range s.conns {
		if c != nil {
			if c.upgraded && len(c.out) == 0 {
				_, _ = unix.Write(c.fd, bye)
			}
			s.close(c)
		}
	}
	if s.ep != nil {
		_ = s.ep.Close() // closes epfd
		s.ep, s.epfd = nil, -1
	}
	for _, fd := range []int{s.lnfd, s.wakefd, s.epfd, s.spare} {
		if fd >= 0 {
			_ = unix.Close(fd)
		}
	}
	s.lnfd, s.wakefd, s.epfd, s.spare = -1, -1, -1, -1
}

// resolve turns "host:port" into a socket address.
func resolve(addr string) (unix.Sockaddr, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	ap := ta.AddrPort()
	if ap.Addr().Is4() || ap.Addr().Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}, nil
	}
	if !ap.Addr().IsValid() { // ":port": all interfaces
		return &unix.SockaddrInet6{Port: int(ap.Port())}, nil
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}, nil
}

func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	}
	return "?"
}

// listen opens a non-blocking SO_REUSEPORT listener and returns it with the
// address it is bound to.
func listen(sa unix.Sockaddr) (int, unix.Sockaddr, error) {
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, nil, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (int, unix.Sockaddr, error) {
		_ = unix.Close(fd)
		return -1, nil, fmt.Errorf("%s %s: %w", what, sockaddrString(sa), err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return fail("SO_REUSEPORT", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, 4096); err != nil {
		return fail("listen", err)
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	return fd, bound, nil
}
