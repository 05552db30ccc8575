package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lesismal/nbio"

	"wspush/server/internal/hub"
)

// The direct write path needs nbio.Conn's descriptor and write queue; with
// the nbio version in go.mod both must be found, or every write silently
// goes the slow way again.
func TestDirectWriteLayout(t *testing.T) {
	if !layout.ok {
		t.Fatal("nbio.Conn has no fd int / writeList slice field: direct writes are off (directwrite.go)")
	}
	var _ hub.DirectConn = pollerConn{}
}

// nbioPair starts an nbio engine and returns a server-side nbio.Conn in it
// with the client's end of the connection. onClose, if set, is the engine's
// OnClose.
func nbioPair(t *testing.T, onClose func(*nbio.Conn, error)) (*nbio.Conn, net.Conn, func() (*nbio.Conn, net.Conn)) {
	t.Helper()
	engine := nbio.NewEngine(nbio.Config{NPoller: 1})
	engine.OnData(func(*nbio.Conn, []byte) {})
	if onClose != nil {
		engine.OnClose(onClose)
	}
	if err := engine.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engine.Stop)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	pair := func() (*nbio.Conn, net.Conn) {
		cli, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cli.Close() })
		srv, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		nbc, err := engine.AddConn(srv)
		if err != nil {
			t.Fatal(err)
		}
		return nbc, cli
	}
	nbc, cli := pair()
	return nbc, cli, pair
}

// queuedLen is the length of nbio's write queue for c.
func queuedLen(c *nbio.Conn) int {
	c.Lock()
	defer c.Unlock()
	return reflect.ValueOf(c).Elem().Field(layout.writeList).Len()
}

func setSockopt(t *testing.T, c interface {
	SyscallConn() (syscall.RawConn, error)
}, opt, v int) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, v) }); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// Several goroutines write records to one connection whose socket buffers
// are small and whose reader is slow, so that direct writes come out short
// and nbio queues their rest while others write: every record must arrive
// whole, and each writer's in its order.
func TestDirectWriteOrder(t *testing.T) {
	nbc, cli, _ := nbioPair(t, nil)
	setSockopt(t, nbc, syscall.SO_SNDBUF, 4096)
	pc := pollerConn{nbc}

	const writers, records = 4, 500
	// record: length (2 bytes, all of it), writer, seq (4 bytes), filler
	record := func(b []byte, w, seq int) []byte {
		n := 7 + (seq*37+w*101)%1400
		b = b[:n]
		binary.BigEndian.PutUint16(b, uint16(n))
		b[2] = byte(w)
		binary.BigEndian.PutUint32(b[3:], uint32(seq))
		for i := 7; i < n; i++ {
			b[i] = byte(w*seq + i)
		}
		return b
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			buf := make([]byte, 2048)
			for seq := range records {
				// Half the writers wait for nbio's queue to drain, so
				// that direct writes keep filling the socket; the other
				// half keep writing while it holds bytes.
				for w%2 == 0 && queuedLen(nbc) != 0 {
					runtime.Gosched()
				}
				if w%2 == 1 {
					runtime.Gosched()
				}
				if _, err := pc.WriteDirect(record(buf, w, seq)); err != nil {
					errs <- err
					return
				}
			}
		})
	}

	_ = cli.SetReadDeadline(time.Now().Add(30 * time.Second))
	next := make([]int, writers)
	var in []byte
	want := make([]byte, 2048)
	chunk := make([]byte, 65536) // small reads: the writers keep finding the socket full
	for got := 0; got < writers*records; {
		n, err := cli.Read(chunk)
		if err != nil {
			t.Fatalf("after %d records: %v", got, err)
		}
		in = append(in, chunk[:n]...)
		for len(in) >= 2 {
			size := int(binary.BigEndian.Uint16(in))
			if size < 7 || size > 1407 {
				t.Fatalf("record %d: bad length %d: the stream is interleaved", got, size)
			}
			if len(in) < size {
				break
			}
			w, seq := int(in[2]), int(binary.BigEndian.Uint32(in[3:]))
			if w >= writers || seq != next[w] {
				t.Fatalf("record %d: writer %d seq %d, want seq %d", got, w, seq, next[min(w, writers-1)])
			}
			if !bytes.Equal(in[:size], record(want, w, seq)) {
				t.Fatalf("record %d (writer %d seq %d) arrived changed", got, w, seq)
			}
			next[w]++
			got++
			in = in[size:]
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(in) != 0 {
		t.Fatalf("%d bytes after the last record", len(in))
	}
}

// A frame the socket took only part of is finished (its rest queued in
// nbio) before another writer's frame can start, even when that writer
// comes between the two parts.
func TestDirectWriteShortWriteNotOvertaken(t *testing.T) {
	nbc, cli, _ := nbioPair(t, nil)
	setSockopt(t, nbc, syscall.SO_SNDBUF, 4096)
	pc := pollerConn{nbc}
	big := bytes.Repeat([]byte("A"), 1<<20) // more than the socket takes
	small := []byte("BBBB")
	done := make(chan error, 1)
	var once sync.Once
	shortWriteHook = func() {
		once.Do(func() {
			go func() { _, err := pc.WriteDirect(small); done <- err }()
			// Give the other writer time to come between the parts: it
			// may only finish after this write has queued its rest.
			select {
			case err := <-done:
				done <- err
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
	t.Cleanup(func() { shortWriteHook = nil })
	taken, err := pc.WriteDirect(big)
	if err != nil {
		t.Fatal(err)
	}
	if taken == len(big) {
		t.Fatal("the socket took the whole frame: no short write to test")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_ = cli.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(big)+len(small))
	if _, err := io.ReadFull(cli, got); err != nil {
		t.Fatal(err)
	}
	if i := bytes.IndexByte(got, 'B'); i != len(big) {
		t.Fatalf("the other frame starts at byte %d, inside the first frame (%d bytes)", i, len(big))
	}
}

// After nbio's poller has closed a connection (its client went away), its
// descriptor number is free and the next socket gets it. A write to the
// old connection must fail and put nothing on the new socket.
func TestDirectWriteAfterCloseMissesReusedDescriptor(t *testing.T) {
	closed := make(chan struct{})
	nbc, cli, _ := nbioPair(t, func(*nbio.Conn, error) { close(closed) })
	old := nbc.Hash()
	_ = cli.Close()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("nbio did not close the connection")
	}

	// A plain socket pair; its accepted end takes the lowest free number,
	// which is the old connection's.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	var srv net.Conn
	var cli2 net.Conn
	for range 8 {
		if cli2, err = net.Dial("tcp", ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
		defer func(c net.Conn) { _ = c.Close() }(cli2)
		if srv, err = ln.Accept(); err != nil {
			t.Fatal(err)
		}
		defer func(c net.Conn) { _ = c.Close() }(srv)
		rc, _ := srv.(*net.TCPConn).SyscallConn()
		fd := -1
		_ = rc.Control(func(f uintptr) { fd = int(f) })
		if fd == old {
			break
		}
		srv = nil
	}
	if srv == nil {
		t.Skipf("no new socket got descriptor %d", old)
	}

	_, staleErr := (pollerConn{nbc}).WriteDirect([]byte("stale"))
	if _, err := srv.Write([]byte("mine")); err != nil {
		t.Fatal(err)
	}
	_ = cli2.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(cli2, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != "mine" {
		t.Fatalf("the socket that reused descriptor %d received %q first, want %q", old, got, "mine")
	}
	if !errors.Is(staleErr, net.ErrClosed) {
		t.Fatalf("write to the closed connection: %v, want net.ErrClosed", staleErr)
	}
}

// A direct write allocates nothing (the push path stays at 0 allocations).
func TestDirectWriteAllocations(t *testing.T) {
	nbc, cli, _ := nbioPair(t, nil)
	pc := pollerConn{nbc}
	frame := []byte{0x81, 3, 'a', 'b', 'c'}
	var c hub.DirectConn = pc
	if n := testing.AllocsPerRun(200, func() {
		if taken, err := c.WriteDirect(frame); err != nil || taken != len(frame) {
			t.Fatalf("WriteDirect = %d, %v", taken, err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per direct write, want 0", n)
	}
	_ = cli
}
