// Package env records the machine and software a wsbench run used: CPU
// model and count, kernel, memory, Go and Node versions, the WebSocket
// library versions (go.mod, node_modules) and the git commit.
//
// Concurrency: Collect is a one-shot read with no shared state.
package env

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Info is the environment of a run.
type Info struct {
	CPUModel  string            `json:"cpu_model"`
	CPUs      int               `json:"cpus"`
	Kernel    string            `json:"kernel"`
	MemTotalG float64           `json:"mem_total_gib"`
	NoFile    string            `json:"nofile_limit"`
	Go        string            `json:"go"`
	Node      string            `json:"node"`
	Libraries map[string]string `json:"libraries"`
	Commit    string            `json:"commit"`
	Sysctls   map[string]string `json:"sysctls"`
}

// Collect gathers Info for the repository at root.
func Collect(root string) Info {
	in := Info{CPUs: runtime.NumCPU(), Libraries: map[string]string{}, Sysctls: map[string]string{}}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				in.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	in.Kernel = readTrim("/proc/sys/kernel/osrelease")
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				f := strings.Fields(l)
				if len(f) > 1 {
					kb = atof(f[1])
				}
			}
		}
		in.MemTotalG = kb / (1 << 20)
	}
	in.NoFile = out(root, "sh", "-c", "ulimit -Sn; ulimit -Hn")
	in.NoFile = strings.ReplaceAll(in.NoFile, "\n", " / ")
	in.Go = out(root, "go", "version")
	in.Node = out(root, "node", "--version")
	in.Commit = out(root, "git", "rev-parse", "--short", "HEAD")
	if s := out(root, "git", "status", "--porcelain", "--untracked-files=no"); s != "" {
		in.Commit += " (dirty tree)"
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				switch f[0] {
				case "github.com/lesismal/nbio", "github.com/gorilla/websocket", "github.com/lxzan/gws":
					in.Libraries[f[0]] = f[1]
				}
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "bench/peers/node-ws/node_modules/ws/package.json")); err == nil {
		var p struct{ Version string }
		if json.Unmarshal(b, &p) == nil {
			in.Libraries["ws (node)"] = p.Version
		}
	}
	for _, k := range []string{"net.core.somaxconn", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_mem", "fs.file-max", "fs.nr_open", "net.ipv4.tcp_max_syn_backlog"} {
		in.Sysctls[k] = strings.Join(strings.Fields(readTrim("/proc/sys/"+strings.ReplaceAll(k, ".", "/"))), " ")
	}
	return in
}

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func out(dir, name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	b, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func atof(s string) float64 {
	var v float64
	for _, c := range s {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + float64(c-'0')
	}
	return v
}
