package cpuquota

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wspush/bench/internal/procstat"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestNewWritesTheLimit(t *testing.T) {
	t.Run("v1", func(t *testing.T) {
		root := t.TempDir()
		g, err := newAt(root, false, "t", 0.5, 10*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(g.Dir(), "cpu.cfs_period_us")); got != "10000" {
			t.Errorf("period %q, want 10000", got)
		}
		if got := read(t, filepath.Join(g.Dir(), "cpu.cfs_quota_us")); got != "5000" {
			t.Errorf("quota %q, want 5000", got)
		}
	})
	t.Run("v2", func(t *testing.T) {
		root := t.TempDir()
		if err := os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("memory\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		g, err := newAt(root, true, "t", 1.5, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(g.Dir(), "cpu.max")); got != "15000 10000" {
			t.Errorf("cpu.max %q, want \"15000 10000\"", got)
		}
		if got := read(t, filepath.Join(root, "cgroup.subtree_control")); got != "+cpu" {
			t.Errorf("subtree_control %q: the cpu controller was not enabled", got)
		}
	})
	t.Run("refused", func(t *testing.T) {
		for _, c := range []struct {
			cores  float64
			period time.Duration
		}{{0, 0}, {-1, 0}, {0.05, 10 * time.Millisecond}, {2, 500 * time.Microsecond}} {
			if _, err := newAt(t.TempDir(), false, "t", c.cores, c.period); err == nil {
				t.Errorf("%g cores per %v accepted", c.cores, c.period)
			}
		}
	})
}

func TestParseStat(t *testing.T) {
	v1 := "nr_periods 200\nnr_throttled 50\nthrottled_time 1500000000\n"
	if s := parseStat([]byte(v1), false); s != (Stat{200, 50, 1500 * time.Millisecond}) {
		t.Errorf("v1: %+v", s)
	}
	v2 := "usage_usec 9\nuser_usec 5\nsystem_usec 4\nnr_periods 10\nnr_throttled 4\nthrottled_usec 2500\n"
	s := parseStat([]byte(v2), true)
	if s != (Stat{10, 4, 2500 * time.Microsecond}) {
		t.Errorf("v2: %+v", s)
	}
	if s.ThrottledShare() != 0.4 {
		t.Errorf("throttled share %g, want 0.4", s.ThrottledShare())
	}
}

// TestQuotaHoldsABusyProcess puts a busy loop in a group limited to a
// quarter of a core and checks, against the kernel, that it got about
// that much and was throttled. Skipped where no cgroup can be created.
func TestQuotaHoldsABusyProcess(t *testing.T) {
	g, err := New("cpuquota-test", 0.25, 0)
	if err != nil {
		t.Skipf("no cgroup here: %v", err)
	}
	defer func() {
		if err := g.Close(); err != nil {
			t.Error(err)
		}
	}()
	cmd := exec.Command("sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := g.Add(cmd.Process.Pid); err != nil {
		if errors.Is(err, os.ErrPermission) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	pid := []int{cmd.Process.Pid}
	c0, err := procstat.SumCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	s0, _ := g.Stat()
	t0 := time.Now()
	// poll until 100 periods (1 s at 10 ms) have gone by with the loop runnable
	for deadline := time.Now().Add(10 * time.Second); ; {
		s, err := g.Stat()
		if err != nil {
			t.Fatal(err)
		}
		if s.Sub(s0).Periods >= 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d periods counted in 10 s: the limit is not in force", s.Sub(s0).Periods)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c1, _ := procstat.SumCPU(pid)
	el := time.Since(t0).Seconds()
	s1, _ := g.Stat()
	cores := (c1 - c0) / el
	d := s1.Sub(s0)
	t.Logf("busy loop under 0.25 cores: %.3f cores over %.2f s; %d of %d periods throttled, held back %v", cores, el, d.Throttled, d.Periods, d.Waited)
	if cores > 0.35 {
		t.Errorf("the busy loop used %.2f cores under a 0.25-core limit", cores)
	}
	if d.ThrottledShare() < 0.5 {
		t.Errorf("throttled in %.0f%% of periods; a busy loop under a quarter core should be in nearly all", 100*d.ThrottledShare())
	}
}
