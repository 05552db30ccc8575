package scenario

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"wspush/bench/internal/target"
)

// fleet is the processes of a cluster run: a nats-server and the wspush
// nodes, each in its own process group (registered with package target,
// so wsbench's Ctrl-C handling kills them too).
type fleet struct {
	logDir string
	store  string // nats-server's JetStream directory, removed by stop
	nats   *exec.Cmd
	nodes  []*exec.Cmd
	admins []string
}

// startNATS starts nats-server with JetStream on a free loopback port and
// waits until it greets a client.
func (f *fleet) startNATS(ctx context.Context, bin, dir string) (int, error) {
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	log := filepath.Join(f.logDir, "nats-server.log")
	argv := []string{bin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-sd", f.store}
	if f.nats, err = target.Launch(argv, "", log, dir); err != nil {
		return 0, err
	}
	if err := waitNATS(ctx, port, f.nats, time.Now().Add(30*time.Second)); err != nil {
		return 0, fmt.Errorf("wsbench: nats-server: %w (log %s)", err, log)
	}
	return port, nil
}

// waitNATS waits until a NATS server on port sends its INFO line.
func waitNATS(ctx context.Context, port int, cmd *exec.Cmd, deadline time.Time) error {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			_ = c.Close()
			if rerr == nil && strings.HasPrefix(line, "INFO ") {
				return nil
			}
			err = fmt.Errorf("no INFO line: %q: %w", line, rerr)
		}
		if target.Exited(cmd) {
			return fmt.Errorf("exited before serving %s", addr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready on %s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startNodes starts c.Procs wspush nodes joined by the NATS server on
// natsPort and waits until each answers /healthz with 200 (connected to
// NATS, stream replayed).
func (f *fleet) startNodes(ctx context.Context, wspush string, c ClusterConfig, natsPort int, dir string) error {
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	for i := 0; i < c.Procs; i++ {
		admin := fmt.Sprintf("127.0.0.1:%d", c.AdminPort+i)
		argv := []string{wspush, "-addr", fmt.Sprintf("127.0.0.1:%d", c.Port+i), "-admin-addr", admin,
			"-nats", natsURL, "-max-conns", strconv.Itoa(c.MaxConns),
			"-push-interval", c.Ticks.String(), "-ping-interval", "0", "-idle-timeout", "0",
			"-accept-rate", "0", "-max-msg-rate", "0", "-history-ttl", "1h"}
		cmd, err := target.Launch(argv, "", filepath.Join(f.logDir, fmt.Sprintf("wspush-%d.log", i)), dir)
		if err != nil {
			return err
		}
		f.nodes = append(f.nodes, cmd)
		f.admins = append(f.admins, "http://"+admin)
	}
	deadline := time.Now().Add(30*time.Second + time.Duration(c.Procs)*time.Second)
	for i, cmd := range f.nodes {
		if err := waitHealthy(ctx, f.admins[i]+"/healthz", cmd, deadline); err != nil {
			return fmt.Errorf("wsbench: wspush node %d: %w (log %s)", i, err, filepath.Join(f.logDir, fmt.Sprintf("wspush-%d.log", i)))
		}
	}
	return nil
}

// waitHealthy polls url until it answers 200.
func waitHealthy(ctx context.Context, url string, cmd *exec.Cmd, deadline time.Time) error {
	cl := http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := cl.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if target.Exited(cmd) {
			return fmt.Errorf("exited before %s answered 200", url)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not healthy by the deadline: %w", url, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (f *fleet) nodePIDs() []int {
	p := make([]int, len(f.nodes))
	for i, c := range f.nodes {
		p[i] = c.Process.Pid
	}
	return p
}

func (f *fleet) adminURLs() []string { return f.admins }

// stop ends the nodes (SIGTERM, then SIGKILL after a minute), then
// nats-server, and removes the JetStream directory. Each process group is
// killed as a whole, so nothing the processes started outlives them.
func (f *fleet) stop() {
	stopGroups(f.nodes, time.Minute)
	f.nodes = nil
	if f.nats != nil {
		stopGroups([]*exec.Cmd{f.nats}, 15*time.Second)
		f.nats = nil
	}
	_ = os.RemoveAll(f.store)
}

func stopGroups(cmds []*exec.Cmd, grace time.Duration) {
	for _, c := range cmds {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for _, c := range cmds {
		_ = target.Reap(c, time.Until(deadline)) // a signal's exit status is expected
	}
}

// getJSON decodes the JSON answer of GET url into v; a request that fails,
// a status other than 200 or a body that does not decode is an error.
func getJSON(ctx context.Context, cl *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// sumStats adds up every node's /v1/stats: open connections, and closed
// connections by reason (why the server closed them, or "client").
func sumStats(ctx context.Context, admins []string) (int, map[string]int64) {
	cl := &http.Client{Timeout: 2 * time.Second}
	sum, closed := 0, map[string]int64{}
	for _, a := range admins {
		var st struct {
			Connections int               `json:"connections"`
			Closed      map[string]uint64 `json:"closed"`
		}
		if getJSON(ctx, cl, a+"/v1/stats", &st) != nil {
			continue
		}
		sum += st.Connections
		for k, v := range st.Closed {
			if v > 0 {
				closed[k] += int64(v)
			}
		}
	}
	return sum, closed
}

// closesWhenEmpty waits (at most wait) until the nodes hold no connection,
// so that wsload's closes at the end have all been counted, and returns
// the nodes' closes by reason.
func closesWhenEmpty(ctx context.Context, admins []string, wait time.Duration) map[string]int64 {
	deadline := time.Now().Add(wait)
	for {
		n, closed := sumStats(ctx, admins)
		if n == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return closed
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// portsFree checks that no one listens on the nodes' ports yet (a node
// that cannot bind would otherwise look like a slow start).
func portsFree(c ClusterConfig) error {
	for i := 0; i < c.Procs; i++ {
		for _, p := range []int{c.Port + i, c.AdminPort + i} {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				return fmt.Errorf("wsbench: cluster: port %d is not free: %w", p, err)
			}
			_ = l.Close()
		}
	}
	return nil
}

// freePort is a loopback TCP port nobody listens on (the kernel's pick).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("wsbench: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// goBuild runs go build -o out pkg in the module at root.
func goBuild(ctx context.Context, root, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("wsbench: go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// natsVersion is what `nats-server --version` prints ("v2.15.2"), or "".
func natsVersion(bin string) string {
	b, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(b))
	return s[strings.LastIndexByte(s, ' ')+1:]
}
