package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The fixture is what the JavaScript tests (client/test) drive over HTTP:
// it starts real wspush processes (the binary, so that they can be
// restarted with SIGTERM or killed with SIGKILL on the same ports), each
// behind a TCP proxy whose connections can be cut or frozen, the "network
// path" under the client.
//
//	GET  /features              {"flags":{"state-dir":bool}}: what this build has
//	POST /servers               {"args":[…]} → server (below); "$TMP" in an arg is a directory of its own
//	POST /servers/{id}/restart  ?signal=TERM|KILL&down_ms=N: stop, wait, start again on the same ports
//	POST /servers/{id}/cut      close every proxied connection → {"cut":N}
//	POST /servers/{id}/freeze   stop forwarding on every proxied connection (new ones flow) → {"frozen":N}
//	POST /servers/{id}/block-ws ?on=1|0: the proxy drops connections that ask for an Upgrade
//	                            (WebSocket blocked, plain HTTP such as /sse flows) → {"blocked":N so far}
//	POST /servers/{id}/stop
//
// A server: {"id", "ws" (direct), "proxy" (ws URL through the proxy),
// "admin", "http" (the WebSocket port's http:// base)}.
type fixture struct {
	t   *testing.T
	bin string // the wspush binary

	mu      sync.Mutex // guards servers and next
	servers map[int]*fixtureServer
	next    int
}

// fixtureServer is one wspush process and its proxy.
type fixtureServer struct {
	ID    int    `json:"id"`
	WS    string `json:"ws"`
	Proxy string `json:"proxy"`
	Admin string `json:"admin"`
	HTTP  string `json:"http"`

	args      []string
	addr      string
	adminAddr string
	log       *lockedBuffer

	mu    sync.Mutex // guards cmd and exited
	cmd   *exec.Cmd
	exit  chan struct{} // closed when cmd has exited
	proxy *tcpProxy
}

func newFixture(t *testing.T) (*fixture, string) {
	t.Helper()
	bin := buildServer(t) // edge_test.go
	f := &fixture{t: t, bin: bin, servers: map[int]*fixtureServer{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /servers", f.create)
	mux.HandleFunc("GET /features", f.features)
	mux.HandleFunc("POST /servers/{id}/{op}", f.op)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, s := range f.servers {
			s.stop(syscall.SIGKILL)
			s.proxy.close()
		}
	})
	return f, "http://" + ln.Addr().String()
}

func (f *fixture) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Args []string `json:"args"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// "$TMP" in an argument is a directory of this server's own, kept
	// across its restarts (for -state-dir).
	dir, err := os.MkdirTemp("", "wspush-fixture-")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f.t.Cleanup(func() { _ = os.RemoveAll(dir) })
	for i, a := range req.Args {
		req.Args[i] = strings.ReplaceAll(a, "$TMP", dir)
	}
	addrs := freeAddrs(f.t, "127.0.0.1", 2)
	s := &fixtureServer{args: req.Args, addr: addrs[0], adminAddr: addrs[1], log: &lockedBuffer{}}
	if err := s.start(f.bin); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	p, err := newTCPProxy(s.addr)
	if err != nil {
		s.stop(syscall.SIGKILL)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.proxy = p
	s.WS, s.Proxy = "ws://"+s.addr+"/ws", "ws://"+p.addr()+"/ws"
	s.Admin, s.HTTP = "http://"+s.adminAddr, "http://"+s.addr
	f.mu.Lock()
	f.next++
	s.ID = f.next
	f.servers[s.ID] = s
	f.mu.Unlock()
	writeJSON(w, s)
}

// features says what the binary supports: {"flags": {"state-dir": true, …}}
// for the flags the tests care about, from its -h.
func (f *fixture) features(w http.ResponseWriter, _ *http.Request) {
	out, _ := exec.Command(f.bin, "-h").CombinedOutput()
	flags := map[string]bool{}
	for _, name := range []string{"state-dir"} {
		flags[name] = strings.Contains(string(out), "-"+name+" ")
	}
	writeJSON(w, map[string]any{"flags": flags})
}

func (f *fixture) op(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.Atoi(r.PathValue("id"))
	f.mu.Lock()
	s := f.servers[id]
	f.mu.Unlock()
	if s == nil {
		http.Error(w, "no such server", http.StatusNotFound)
		return
	}
	switch r.PathValue("op") {
	case "restart":
		sig := syscall.SIGTERM
		if r.URL.Query().Get("signal") == "KILL" {
			sig = syscall.SIGKILL
		}
		down, _ := strconv.Atoi(r.URL.Query().Get("down_ms"))
		begin := time.Now()
		s.stop(sig)
		stopped := time.Since(begin)
		time.Sleep(time.Duration(down) * time.Millisecond)
		if err := s.start(f.bin); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, map[string]any{"stopped_ms": stopped.Milliseconds(), "up_ms": time.Since(begin).Milliseconds()})
	case "cut":
		writeJSON(w, map[string]int{"cut": s.proxy.cut()})
	case "freeze":
		writeJSON(w, map[string]int{"frozen": s.proxy.freeze()})
	case "block-ws":
		s.proxy.blockUpgrades.Store(r.URL.Query().Get("on") != "0")
		writeJSON(w, map[string]int64{"blocked": s.proxy.blocked.Load()})
	case "stop":
		s.stop(syscall.SIGTERM)
		writeJSON(w, map[string]bool{"stopped": true})
	default:
		http.Error(w, "unknown op", http.StatusNotFound)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// start runs the binary on the server's ports with a clean environment (no
// WSPUSH_* from the shell) and waits until /healthz answers.
func (s *fixtureServer) start(bin string) error {
	args := append([]string{"-addr", s.addr, "-admin-addr", s.adminAddr}, s.args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return err
	}
	exit := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exit) }()
	s.mu.Lock()
	s.cmd, s.exit = cmd, exit
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exit:
			return fmt.Errorf("wspush %v exited: %s", args, s.log.String())
		default:
		}
		resp, err := http.Get("http://" + s.adminAddr + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("wspush did not answer /healthz within 10s")
}

// stop signals the process and waits for it to exit (SIGKILL after 15 s).
func (s *fixtureServer) stop(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exit := s.cmd, s.exit
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exit:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exit
	}
}

// tcpProxy forwards 127.0.0.1 connections to a target; cut closes them
// all, freeze stops forwarding on the current ones while leaving them open
// (a network path that went silent). With blockUpgrades set it drops every
// connection on which the client asks for an Upgrade (a header line
// "Upgrade:" in what it sends) before that request reaches the target: a
// path on which WebSocket fails and plain HTTP works.
type tcpProxy struct {
	ln     net.Listener
	target string

	blockUpgrades atomic.Bool
	blocked       atomic.Int64 // connections dropped for an Upgrade

	mu    sync.Mutex // guards conns
	conns map[*proxyConn]struct{}
}

type proxyConn struct {
	a, b   net.Conn
	ctx    context.Context
	freeze context.CancelFunc
}

func newTCPProxy(target string) (*tcpProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[*proxyConn]struct{}{}}
	go p.serve()
	return p, nil
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			a.Close()
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		c := &proxyConn{a: a, b: b, ctx: ctx, freeze: cancel}
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		go c.pipe(b, a, p) // client to target
		go c.pipe(a, b, p)
	}
}

// pipe copies src to dst until either ends; once frozen it reads and
// drops, so both peers see silence rather than an end, until a cut.
func (c *proxyConn) pipe(dst, src net.Conn, p *tcpProxy) {
	buf := make([]byte, 32<<10)
	var tail []byte // the end of what the client sent, for a match across reads
	for {
		n, err := src.Read(buf)
		if n > 0 && src == c.a && p.blockUpgrades.Load() {
			window := append(tail, bytes.ToLower(buf[:n])...)
			if bytes.Contains(window, []byte("\nupgrade:")) {
				p.blocked.Add(1)
				break
			}
			tail = append(tail[:0], window[max(0, len(window)-16):]...)
		}
		if n > 0 && c.ctx.Err() == nil {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			break
		}
	}
	c.a.Close()
	c.b.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *tcpProxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns)
	for c := range p.conns {
		// A reset rather than a FIN: the path is gone, not closed.
		if tc, ok := c.a.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.a.Close()
		c.b.Close()
		delete(p.conns, c)
	}
	return n
}

func (p *tcpProxy) freeze() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.freeze()
	}
	return len(p.conns)
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.cut()
}
