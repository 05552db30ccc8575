// Package target starts and stops the servers wsbench measures — wspush
// and the peers in bench/peers — as one or more processes, each pinned to
// CPUs with taskset and optionally capped together at a number of cores
// (cpuquota), in its own process group, on consecutive ports.
//
// Concurrency: a Running is owned by the goroutine that started it; Stop
// may be called from any goroutine and more than once. The package-level
// registry (KillAll) is safe for concurrent use: every process group this
// package or package wsload starts is registered until reaped, so a signal
// handler can kill everything on Ctrl-C.
package target

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"wspush/bench/internal/cpuquota"
)

// Names of the targets, in the order they are measured.
var Names = []string{"wspush", "gorilla", "gws", "node-ws", "floor"}

// SSE is wspush serving its clients over Server-Sent Events (GET /sse,
// wsload -transport sse): a target of its own, not in Names, that
// -targets can name to compare it with "wspush" (idle and ticks).
const SSE = "wspush-sse"

// Spec describes one target deployment.
type Spec struct {
	Name      string        // one of Names
	Root      string        // repository root (bin/ and bench/peers/ below it)
	Procs     int           // server processes, ≥1 (ports BasePort.., admin AdminBase..)
	BasePort  int           // first WebSocket port
	AdminBase int           // first admin port
	Interval  time.Duration // -push-interval
	MaxConns  int           // wspush -max-conns per process; 0 = none
	CPUs      string        // taskset -c list; "" = not pinned
	Extra     []string      // more flags (wspush: e.g. -profile cpu)
	LogDir    string        // stdout+stderr of each process go to LogDir/<name>-<i>.log
	// CPUQuota caps the CPU time of all the processes together at this
	// many cores (a cgroup CFS limit, cpuquota); 0 = no cap.
	CPUQuota float64
}

// Running is a started target.
type Running struct {
	Spec  Spec
	procs []*exec.Cmd
	quota *cpuquota.Group // nil without Spec.CPUQuota
	once  sync.Once
}

// QuotaStat is the CPU cap's accounting so far (ok false without a cap).
func (r *Running) QuotaStat() (s cpuquota.Stat, ok bool) {
	if r.quota == nil {
		return s, false
	}
	s, err := r.quota.Stat()
	return s, err == nil
}

// PIDs are the server processes (taskset execs, so these are the servers).
func (r *Running) PIDs() []int {
	p := make([]int, len(r.procs))
	for i, c := range r.procs {
		p[i] = c.Process.Pid
	}
	return p
}

// Ports are the client ports of all processes (BasePort, BasePort+1, …).
func (r *Running) Ports() []int {
	p := make([]int, r.Spec.Procs)
	for i := range p {
		p[i] = r.Spec.BasePort + i
	}
	return p
}

// URL is the wsload -url for all processes (a port range when several).
func (r *Running) URL() string {
	s := r.Spec
	scheme, path := "ws", "/ws"
	if s.Name == SSE { // wsload reads an http:// URL as an SSE stream
		scheme, path = "http", "/sse"
	}
	if s.Procs == 1 {
		return fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, s.BasePort, path)
	}
	return fmt.Sprintf("%s://127.0.0.1:%d-%d%s", scheme, s.BasePort, s.BasePort+s.Procs-1, path)
}

// AdminURL is the admin base URL of process i.
func (r *Running) AdminURL(i int) string {
	return fmt.Sprintf("http://127.0.0.1:%d", r.Spec.AdminBase+i)
}

// Binary is the executable a target runs from, relative to root.
func Binary(name string) string {
	switch name {
	case "wspush", SSE:
		return "bin/wspush"
	case "node-ws":
		return "bench/peers/node-ws/server.js"
	default:
		return "bin/peer-" + name
	}
}

// Args is the command line of process i (without taskset).
func (s Spec) Args(i int) ([]string, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", s.BasePort+i)
	admin := fmt.Sprintf("127.0.0.1:%d", s.AdminBase+i)
	common := []string{"-addr", addr, "-admin-addr", admin, "-push-interval", s.Interval.String()}
	var argv []string
	switch s.Name {
	case "wspush", SSE:
		argv = append([]string{filepath.Join(s.Root, Binary(s.Name))}, common...)
		// the peers neither ping, time out idle clients nor limit
		// admission; make wspush alike (flags this build has)
		argv = append(argv, wspushFlags(argv[0])...)
		if s.MaxConns > 0 {
			argv = append(argv, "-max-conns", strconv.Itoa(s.MaxConns))
		}
	case "node-ws":
		argv = append([]string{"node", filepath.Join(s.Root, Binary(s.Name))}, common...)
	case "gorilla", "gws", "floor":
		argv = append([]string{filepath.Join(s.Root, Binary(s.Name))}, common...)
	default:
		return nil, fmt.Errorf("wsbench: unknown target %q", s.Name)
	}
	return append(argv, s.Extra...), nil
}

// benchFlags are wspush's settings for the benchmark, each applied only
// when the binary knows the flag (the server grows flags over time).
var benchFlags = [][2]string{
	{"-ping-interval", "0"}, {"-idle-timeout", "0"},
	{"-max-conns-per-ip", "0"}, {"-accept-rate", "0"}, {"-max-msg-rate", "0"},
}

var helpCache sync.Map // binary path → help text

func wspushFlags(bin string) []string {
	h, ok := helpCache.Load(bin)
	if !ok {
		out, _ := exec.Command(bin, "-h").CombinedOutput()
		h = string(out)
		helpCache.Store(bin, h)
	}
	var args []string
	for _, f := range benchFlags {
		if strings.Contains(h.(string), "  "+f[0]+" ") || strings.Contains(h.(string), "  "+f[0]+"\n") {
			args = append(args, f[0], f[1])
		}
	}
	return args
}

// Start launches every process of s and waits until each accepts on both
// its ports (or ctx ends, or a process exits, or 30 s pass).
func Start(ctx context.Context, s Spec) (*Running, error) {
	if s.Procs < 1 {
		s.Procs = 1
	}
	r := &Running{Spec: s}
	if s.CPUQuota > 0 {
		g, err := cpuquota.New("wsbench-"+s.Name, s.CPUQuota, 0)
		if err != nil {
			return nil, fmt.Errorf("wsbench: %s: cap of %g cores: %w", s.Name, s.CPUQuota, err)
		}
		r.quota = g
	}
	for i := 0; i < s.Procs; i++ {
		argv, err := s.Args(i)
		if err != nil {
			return nil, err
		}
		cmd, err := Launch(argv, s.CPUs, filepath.Join(s.LogDir, fmt.Sprintf("%s-%d.log", s.Name, i)), s.Root)
		if err != nil {
			r.Stop(2 * time.Second)
			return nil, err
		}
		r.procs = append(r.procs, cmd)
		if r.quota != nil {
			// taskset execs the server in place: the pid is the server's
			if err := r.quota.Add(cmd.Process.Pid); err != nil {
				r.Stop(2 * time.Second)
				return nil, fmt.Errorf("wsbench: %s: %w", s.Name, err)
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < s.Procs; i++ {
		for _, port := range []int{s.BasePort + i, s.AdminBase + i} {
			if err := waitPort(ctx, port, deadline, r.procs[i]); err != nil {
				r.Stop(2 * time.Second)
				return nil, fmt.Errorf("wsbench: %s process %d: %w (log %s)", s.Name, i, err, s.LogDir)
			}
		}
	}
	return r, nil
}

func waitPort(ctx context.Context, port int, deadline time.Time, cmd *exec.Cmd) error {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if exited(cmd) {
			return fmt.Errorf("exited before listening on %s", addr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after 30s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Exited reports whether cmd's process has ended, without reaping it.
func Exited(cmd *exec.Cmd) bool { return exited(cmd) }

// exited reports whether cmd's process has ended (without reaping it).
func exited(cmd *exec.Cmd) bool {
	return syscall.Kill(cmd.Process.Pid, 0) != nil || isZombie(cmd.Process.Pid)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// Stop sends SIGTERM to every process group, waits up to grace for them to
// exit, then SIGKILLs what is left. Safe to call more than once.
func (r *Running) Stop(grace time.Duration) {
	r.once.Do(func() {
		for _, c := range r.procs {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
		}
		deadline := time.Now().Add(grace)
		for _, c := range r.procs {
			Reap(c, time.Until(deadline))
		}
		if r.quota != nil {
			_ = r.quota.Close()
		}
	})
}

// Launch starts argv (under taskset -c cpus when cpus is set) in a new
// process group with stdout+stderr to logPath, registered for KillAll.
func Launch(argv []string, cpus, logPath, dir string) (*exec.Cmd, error) {
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, fmt.Errorf("wsbench: %w", err)
	}
	log, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("wsbench: %w", err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("wsbench: start %s: %w", strings.Join(argv, " "), err)
	}
	_ = log.Close() // the child has its own descriptor
	register(cmd.Process.Pid)
	return cmd, nil
}

// Reap waits up to d for cmd to exit, then SIGKILLs its process group and
// waits for it; it unregisters the group. It returns cmd.Wait's error.
func Reap(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(max(d, 0)):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err = <-done
	}
	// children that outlived the leader (wsload workers) die with the group
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	unregister(cmd.Process.Pid)
	return err
}

var reg struct {
	sync.Mutex
	groups map[int]bool
}

func register(pgid int) {
	reg.Lock()
	defer reg.Unlock()
	if reg.groups == nil {
		reg.groups = map[int]bool{}
	}
	reg.groups[pgid] = true
}

func unregister(pgid int) {
	reg.Lock()
	defer reg.Unlock()
	delete(reg.groups, pgid)
}

// KillAll SIGKILLs every process group still registered.
func KillAll() int {
	reg.Lock()
	defer reg.Unlock()
	n := 0
	for g := range reg.groups {
		if syscall.Kill(-g, syscall.SIGKILL) == nil {
			n++
		}
		delete(reg.groups, g)
	}
	return n
}

// EnsureNode installs bench/peers/node-ws/node_modules with npm ci when
// the ws package is missing.
func EnsureNode(ctx context.Context, root string) error {
	dir := filepath.Join(root, "bench/peers/node-ws")
	if _, err := os.Stat(filepath.Join(dir, "node_modules/ws/package.json")); err == nil {
		return nil
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--prefix", dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("wsbench: npm ci --prefix %s: %w", dir, err)
	}
	return nil
}

// Build compiles bin/wspush, bin/wsload and the Go peers under root.
func Build(ctx context.Context, root string) error {
	pkgs := [][2]string{{"bin/wspush", "./server"}, {"bin/wsload", "./loadgen"},
		{"bin/peer-gorilla", "./bench/peers/gorilla"}, {"bin/peer-gws", "./bench/peers/gws"}, {"bin/peer-floor", "./bench/peers/floor"}}
	var errs []error
	for _, p := range pkgs {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", p[0], p[1])
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("wsbench: go build %s: %w\n%s", p[1], err, out))
		}
	}
	return errors.Join(errs...)
}
