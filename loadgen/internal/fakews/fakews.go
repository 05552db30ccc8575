// Package fakews is a scripted WebSocket server for wsload's self-check
// tests: every connection gets the same script of frames (with known
// delays, gaps, duplicates, reorders, a missing welcome, a disconnect), so a
// test can assert that wsload reports exactly what was injected. It speaks
// just enough HTTP/1.1 and RFC 6455 for that, on raw net.
//
// With Options it can also refuse the first upgrades with HTTP 503 (or
// 429) and a Retry-After header, as wspush does over -accept-rate.
//
// It also serves topics (topics.go) the way wspush does, with just enough
// of docs/protocol.md for publish and churn: sub with since/epoch, a
// replay of what a resuming subscriber missed, /v1/publish. A client's
// close frame is answered with one, and then the server hangs up (after
// Options.CloseDelay).
//
// Concurrency: Start runs an accept goroutine and one goroutine per
// connection (fine for a test server); Close stops them all and waits.
// Conns, Pings, Requests, Refused and the other counters are atomics; mu
// guards conns and the event times; topicMu guards the topics.
package fakews

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"wspush/server/wire"
)

// Step is one action of the script.
type Step struct {
	Welcome bool          // send a welcome frame
	Tick    uint64        // send a tick with this seq (0: none)
	Late    time.Duration // the tick's due time is this long before now
	Raw     []byte        // send these bytes as they are (a hand-made frame)
	Split   bool          // write the tick one byte at a time
	Close   uint16        // send a close frame with this code, then hang up
	Hangup  bool          // close the TCP connection without a close frame
	Pause   time.Duration // wait before the next step
}

// Options change how a Server answers upgrade requests.
type Options struct {
	// Refuse answers the first Refuse upgrade requests with HTTP
	// RefuseStatus (0: 503) and hangs up. RetryAfter, when not empty, is
	// sent as the Retry-After header value.
	Refuse       int
	RefuseStatus int
	RetryAfter   string
	// CloseDelay is how long the server waits before it answers a
	// client's close frame and hangs up (plus 20 ms, in which it watches
	// for a client that hangs up first).
	CloseDelay time.Duration
}

// Server is a running fake server.
type Server struct {
	ln       net.Listener
	script   []Step
	opts     Options
	wg       sync.WaitGroup
	mu       sync.Mutex // guards conns, refusedAt, upgradedAt
	conns    map[net.Conn]bool
	Conns    atomic.Int64 // upgrades done
	Pings    atomic.Int64 // pings answered
	Requests atomic.Int64 // upgrade requests read
	Refused  atomic.Int64 // requests refused (Options.Refuse)
	// ClientCloses counts close frames received; EarlyHangups those
	// connections whose client closed its socket before the server
	// answered its close frame.
	ClientCloses, EarlyHangups atomic.Int64
	// PresenceSubs counts subs that asked for "presence":true.
	PresenceSubs atomic.Int64

	refusedAt, upgradedAt []time.Time

	topicMu sync.Mutex
	topics  map[string]*topic
}

// Start listens on 127.0.0.1:0 and serves script to every connection.
// After the script the connection stays open, answering pings, until the
// client leaves or Close.
func Start(script []Step) (*Server, error) { return StartWith(script, Options{}) }

// StartWith is Start with Options.
func StartWith(script []Step, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if opts.RefuseStatus == 0 {
		opts.RefuseStatus = http.StatusServiceUnavailable
	}
	s := &Server{ln: ln, script: script, opts: opts, conns: map[net.Conn]bool{}, topics: map[string]*topic{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// URL is the ws:// URL of the server.
func (s *Server) URL() string { return "ws://" + s.ln.Addr().String() + "/ws" }

// Times returns when requests were refused and when upgrades were done,
// in the order they happened.
func (s *Server) Times() (refused, upgraded []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.refusedAt...), append([]time.Time(nil), s.upgradedAt...)
}

// Close stops the server and every connection.
func (s *Server) Close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			_ = c.Close()
		}()
	}
}

func (s *Server) serve(c net.Conn) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if n := s.Requests.Add(1); n <= int64(s.opts.Refuse) {
		s.refuse(c)
		return
	}
	sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
	out := []byte(resp)
	s.Conns.Add(1)
	s.mu.Lock()
	s.upgradedAt = append(s.upgradedAt, time.Now())
	s.mu.Unlock()
	var wmu sync.Mutex // the ping answerer, the script and publishes write
	write := func(b []byte) bool {
		wmu.Lock()
		defer wmu.Unlock()
		_, err := c.Write(b)
		return err == nil
	}
	// answer pings, subs and the close in the background
	done := make(chan struct{})
	sub := &subscriber{write: write, conn: c}
	go func() {
		defer close(done)
		defer s.unsubscribe(sub)
		s.readLoop(c, br, sub)
	}()
	for i, st := range s.script {
		var frame []byte
		switch {
		case st.Welcome:
			frame = wire.AppendFrame(nil, wire.OpText, wire.AppendWelcome(nil, "c", 1000, 0, "hi"))
		case st.Tick > 0:
			due := time.Now().Add(-st.Late).UnixNano()
			frame = wire.AppendFrame(nil, wire.OpText, wire.AppendTick(nil, st.Tick, due, ""))
		case st.Raw != nil:
			frame = st.Raw
		case st.Close > 0:
			frame = wire.AppendCloseFrame(nil, st.Close, "bye")
		}
		if i == 0 {
			frame = append(out, frame...) // frames in the same write as the 101
		}
		if st.Split {
			for j := range frame {
				if !write(frame[j : j+1]) {
					return
				}
				time.Sleep(time.Millisecond)
			}
		} else if len(frame) > 0 && !write(frame) {
			return
		}
		if st.Close > 0 || st.Hangup {
			return
		}
		if st.Pause > 0 {
			time.Sleep(st.Pause)
		}
	}
	if len(s.script) == 0 {
		write(out)
	}
	<-done
}

// refuse answers an upgrade request with Options.RefuseStatus.
func (s *Server) refuse(c net.Conn) {
	s.Refused.Add(1)
	s.mu.Lock()
	s.refusedAt = append(s.refusedAt, time.Now())
	s.mu.Unlock()
	resp := "HTTP/1.1 " + strconv.Itoa(s.opts.RefuseStatus) + " " + http.StatusText(s.opts.RefuseStatus) + "\r\n"
	if s.opts.RetryAfter != "" {
		resp += "Retry-After: " + s.opts.RetryAfter + "\r\n"
	}
	resp += "Content-Length: 0\r\nConnection: close\r\n\r\n"
	_, _ = c.Write([]byte(resp))
}

// readLoop answers client text pings {"type":"ping","id":X} with pongs and
// subs with subscriptions, and returns when the client goes away or after
// answering its close frame.
func (s *Server) readLoop(c net.Conn, br *bufio.Reader, sub *subscriber) {
	write := sub.write
	var hdr [14]byte
	for {
		if _, err := readFull(br, hdr[:2]); err != nil {
			return
		}
		op, n := hdr[0]&0x0F, uint64(hdr[1]&0x7F)
		switch n {
		case 126:
			if _, err := readFull(br, hdr[2:4]); err != nil {
				return
			}
			n = uint64(binary.BigEndian.Uint16(hdr[2:4]))
		case 127:
			if _, err := readFull(br, hdr[2:10]); err != nil {
				return
			}
			n = binary.BigEndian.Uint64(hdr[2:10])
		}
		var key [4]byte
		if hdr[1]&0x80 != 0 {
			if _, err := readFull(br, key[:]); err != nil {
				return
			}
		}
		if n > 1<<16 {
			return
		}
		p := make([]byte, n)
		if _, err := readFull(br, p); err != nil {
			return
		}
		for i := range p {
			p[i] ^= key[i&3]
		}
		if op == wire.OpClose {
			s.unsubscribe(sub) // no data after the client's close
			s.answerClose(c, br, write)
			return
		}
		if op == wire.OpText && strings.Contains(string(p), `"sub"`) {
			s.subscribe(p, sub)
		}
		if op == wire.OpText && strings.Contains(string(p), `"ping"`) {
			m, err := wire.ParseClient(p)
			if err == nil && m.Type == wire.TypePing {
				s.Pings.Add(1)
				write(wire.AppendFrame(nil, wire.OpText, wire.AppendPong(nil, m.ID)))
			}
		}
	}
}

func readFull(br *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := br.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// answerClose answers a client's close frame after Options.CloseDelay and
// hangs up, noting a client that hung up first.
func (s *Server) answerClose(c net.Conn, br *bufio.Reader, write func([]byte) bool) {
	s.ClientCloses.Add(1)
	// A client that waits for the server reads on: nothing arrives.
	_ = c.SetReadDeadline(time.Now().Add(s.opts.CloseDelay + 20*time.Millisecond))
	if _, err := br.ReadByte(); err == nil || !isTimeout(err) {
		s.EarlyHangups.Add(1)
	}
	_ = c.SetReadDeadline(time.Time{})
	write(wire.AppendCloseFrame(nil, 1000, ""))
	_ = c.Close()
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
