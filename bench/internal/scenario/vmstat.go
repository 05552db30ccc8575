package scenario

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// vmstat is a `vmstat -n 1` child whose lines are kept with their time.
type vmstat struct {
	cmd   *exec.Cmd
	mu    sync.Mutex // guards lines
	lines []vmLine
	done  chan struct{}
}

type vmLine struct {
	at time.Time
	f  []int // r b swpd free buff cache si so bi bo in cs us sy id wa st
}

func startVmstat(dir string) (*vmstat, error) {
	v := &vmstat{cmd: exec.Command("vmstat", "-n", "1"), done: make(chan struct{})}
	out, err := v.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("wsbench: vmstat: %w", err)
	}
	if err := v.cmd.Start(); err != nil {
		return nil, fmt.Errorf("wsbench: vmstat: %w", err)
	}
	go func() {
		defer close(v.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var f []int
			for _, w := range bytes.Fields(sc.Bytes()) {
				n, err := strconv.Atoi(string(w))
				if err != nil {
					f = nil
					break
				}
				f = append(f, n)
			}
			if len(f) >= 15 {
				v.mu.Lock()
				v.lines = append(v.lines, vmLine{at: time.Now(), f: f})
				v.mu.Unlock()
			}
		}
	}()
	_ = dir
	return v, nil
}

func (v *vmstat) stop() {
	_ = v.cmd.Process.Kill()
	<-v.done
	_ = v.cmd.Wait()
}

// summary averages vmstat's lines of (from, to]: run queue (and its max),
// context switches per second, user, system and idle CPU %.
func (v *vmstat) summary(from, to time.Time) (r float64, rmax int, cs, us, sy, id float64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, l := range v.lines {
		if !l.at.After(from) || l.at.After(to) {
			continue
		}
		n++
		r += float64(l.f[0])
		rmax = max(rmax, l.f[0])
		cs += float64(l.f[11])
		us += float64(l.f[12])
		sy += float64(l.f[13])
		id += float64(l.f[14])
	}
	if n == 0 {
		return
	}
	k := float64(n)
	return r / k, rmax, cs / k, us / k, sy / k, id / k
}
