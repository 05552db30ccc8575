// Package workers runs a scenario over several processes of wsload itself
// when one process cannot hold the connections (RLIMIT_NOFILE), and merges
// their results exactly.
//
// Protocol: the parent starts `wsload __worker` (os.Executable) once per
// worker, writes the worker's scenario.Config as one JSON document on its
// stdin and reads JSON lines from its stdout: {"second":…} once a second,
// then one {"result":…}. Worker stderr is passed through, prefixed.
// Worker w owns global connection numbers w, w+P, w+2P, … so every worker
// spreads over all URLs and sources; worker 0 alone publishes.
//
// Concurrency: Run starts one reader goroutine per worker; they send on a
// channel that Run's goroutine drains, so the per-second aggregation (a map
// owned by Run) needs no lock. Readers exit at their worker's EOF; Run
// waits for every worker process before returning. Cancelling ctx kills
// the workers.
package workers

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"wspush/loadgen/internal/scenario"
	"wspush/loadgen/internal/selfmon"
	"wspush/loadgen/result"
)

// Command is the hidden subcommand of a worker process.
const Command = "__worker"

// Reserve is how many descriptors a process keeps for itself (dialer
// pool, std files, HTTP client, /proc reads) below RLIMIT_NOFILE.
const Reserve = 600

// PerProcess is how many connections one process may hold here.
func PerProcess() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1000
	}
	n := int(min(rl.Cur, 1<<24)) - Reserve
	return max(n, 100)
}

// Procs resolves -procs ("auto" or a number) for conns connections.
func Procs(flag string, conns int) (int, error) {
	per := PerProcess()
	if flag == "auto" {
		return max((conns+per-1)/per, 1), nil
	}
	var n int
	if _, err := fmt.Sscan(flag, &n); err != nil || n < 1 || n > 256 {
		return 0, fmt.Errorf("workers: -procs must be auto or 1..256, got %q", flag)
	}
	if (conns+n-1)/n > per {
		return 0, fmt.Errorf("workers: %d connections over %d processes exceed %d per process (RLIMIT_NOFILE); use -procs auto", conns, n, per)
	}
	return n, nil
}

// Split gives worker w of p its share of cfg.
func Split(cfg scenario.Config, w, p int) scenario.Config {
	c := cfg
	c.Offset, c.Stride = w, p
	c.Conns = cfg.Conns / p
	if w < cfg.Conns%p {
		c.Conns++
	}
	c.Rate = cfg.Rate / float64(p)
	c.PingRate = cfg.PingRate / float64(p)
	c.ChurnRate = cfg.ChurnRate / float64(p)
	c.Publisher = w == 0
	c.TotalConns, c.Procs = cfg.Conns, p
	return c
}

// Line is one line of worker output.
type Line struct {
	Second *result.Second  `json:"second,omitempty"`
	Sample *selfmon.Sample `json:"sample,omitempty"`
	Result *result.Result  `json:"result,omitempty"`
}

type event struct {
	w    int
	line Line
	err  error
	eof  bool
}

// Run starts p workers, prints a merged live line per second to log and
// returns the merged result.
func Run(ctx context.Context, cfg scenario.Config, p int, log io.Writer) (*result.Result, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("workers: %w", err)
	}
	cfg.StartAt = time.Now().Add(time.Second + time.Duration(p)*100*time.Millisecond)
	events := make(chan event, 64)
	cmds := make([]*exec.Cmd, p)
	for w := range p {
		wc := Split(cfg, w, p)
		in, err := json.Marshal(wc)
		if err != nil {
			return nil, fmt.Errorf("workers: %w", err)
		}
		cmd := exec.CommandContext(ctx, exe, Command)
		cmd.Stdin = bytesReader(in)
		cmd.Stderr = &prefixWriter{w: log, prefix: fmt.Sprintf("[worker %d] ", w)}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, fmt.Errorf("workers: %w", err)
		}
		if err := cmd.Start(); err != nil {
			killAll(cmds[:w])
			return nil, fmt.Errorf("workers: start worker %d: %w", w, err)
		}
		cmds[w] = cmd
		go read(w, out, events)
	}
	results := make([]*result.Result, p)
	seconds := map[int][]*result.Second{}
	samples := map[int][]*selfmon.Sample{}
	var firstErr error
	var errTotal int64
	for open := p; open > 0; {
		ev := <-events
		switch {
		case ev.eof:
			open--
		case ev.err != nil:
			if firstErr == nil {
				firstErr = fmt.Errorf("workers: worker %d: %w", ev.w, ev.err)
			}
		case ev.line.Result != nil:
			results[ev.w] = ev.line.Result
		case ev.line.Second != nil:
			t := ev.line.Second.T
			seconds[t] = append(seconds[t], ev.line.Second)
			samples[t] = append(samples[t], ev.line.Sample)
			if len(seconds[t]) == p {
				s, smp := combine(seconds[t], samples[t])
				errTotal += s.Errors
				fmt.Fprintln(log, scenario.LiveLine(s, smp, cfg.Conns, errTotal))
				delete(seconds, t)
				delete(samples, t)
			}
		}
	}
	for w, cmd := range cmds {
		if err := cmd.Wait(); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("workers: worker %d: %w", w, err)
		}
	}
	var parts []*result.Result
	for w, r := range results {
		if r == nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("workers: worker %d sent no result", w)
			}
			continue
		}
		parts = append(parts, r)
	}
	if len(parts) == 0 {
		return nil, firstErr
	}
	merged, err := result.Merge(parts)
	if err != nil {
		return nil, err
	}
	merged.ConnsTarget = cfg.Conns
	merged.Params.Rate = cfg.Rate
	merged.Params.PingRate, merged.Params.ChurnRate = cfg.PingRate, cfg.ChurnRate
	if firstErr != nil {
		merged.Bottleneck.Reasons = append(merged.Bottleneck.Reasons, "incomplete: "+firstErr.Error())
	}
	return merged, nil
}

// combine merges one second of all workers for the live line.
func combine(ss []*result.Second, smps []*selfmon.Sample) (result.Second, selfmon.Sample) {
	h := result.NewHist()
	var out result.Second
	var smp selfmon.Sample
	for i, s := range ss {
		out.T = s.T
		out.Conns += s.Conns
		out.Connects += s.Connects
		out.Msgs += s.Msgs
		out.Gaps += s.Gaps
		out.Errors += s.Errors
		if d, err := result.DecodeHist(s.LagHist); err == nil {
			h.Merge(d)
		}
		if m := smps[i]; m != nil {
			smp.CPUCores += m.CPUCores
			smp.PollerBusy = max(smp.PollerBusy, m.PollerBusy)
		}
	}
	pc := h.Percentiles()
	out.LagP50, out.LagP99, out.LagMax = pc.P50, pc.P99, pc.Max
	return out, smp
}

func read(w int, r io.Reader, events chan<- event) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	for sc.Scan() {
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			events <- event{w: w, err: fmt.Errorf("bad line: %w", err)}
			continue
		}
		events <- event{w: w, line: l}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, os.ErrClosed) {
		events <- event{w: w, err: err}
	}
	events <- event{w: w, eof: true}
}

func killAll(cmds []*exec.Cmd) {
	for _, c := range cmds {
		if c != nil && c.Process != nil {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
}

// Serve is the worker side: read the Config from in, run, write lines.
func Serve(ctx context.Context, in io.Reader, out io.Writer, log io.Writer) error {
	var cfg scenario.Config
	if err := json.NewDecoder(in).Decode(&cfg); err != nil {
		return fmt.Errorf("workers: read config: %w", err)
	}
	run, err := scenario.New(cfg)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	run.Log = log
	run.Live = func(s result.Second, smp selfmon.Sample) {
		_ = enc.Encode(Line{Second: &s, Sample: &smp})
	}
	res, err := run.Execute(ctx)
	if err != nil {
		return err
	}
	return enc.Encode(Line{Result: res})
}
