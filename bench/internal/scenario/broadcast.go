package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"wspush/bench/internal/bclient"
	"wspush/bench/internal/target"
)

// BroadcastResult is one broadcast measurement of one target.
type BroadcastResult struct {
	Target string          `json:"target"`
	Round  int             `json:"round"`
	Result *bclient.Result `json:"result,omitempty"`
	Err    string          `json:"error,omitempty"`
}

// Broadcast measures, per target and round, the time count broadcasts take
// to reach all e.Conns clients (bclient, in a child `wsbench __bcast`
// pinned to e.LoadCPUs).
func Broadcast(ctx context.Context, e *Env, count int) ([]BroadcastResult, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("wsbench: %w", err)
	}
	var out []BroadcastResult
	for round := 0; round < e.Rounds; round++ {
		for _, name := range e.Targets {
			r := BroadcastResult{Target: name, Round: round}
			res, err := broadcastOne(ctx, e, self, name, count, round)
			if err != nil {
				if ctx.Err() != nil {
					return out, err
				}
				r.Err = err.Error()
			}
			r.Result = res
			if res != nil {
				e.logf("bcast %-8s round %d: %d clients, p50 %.1fms p99 %.1fms max %.1fms missing %d %s", name, round, res.Connected, res.All.P50, res.All.P99, res.All.Max, res.All.Missing, r.Err)
			} else {
				e.logf("bcast %-8s round %d: %s", name, round, r.Err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func broadcastOne(ctx context.Context, e *Env, self, name string, count, round int) (*bclient.Result, error) {
	e.waitQuiet(ctx)
	run, err := target.Start(ctx, e.spec(name, idleInterval))
	if err != nil {
		return nil, err
	}
	defer stopTarget(run)
	outPath := filepath.Join(e.WorkDir, fmt.Sprintf("bcast-%s-%d.json", name, round))
	argv := []string{self, "__bcast", "-url", run.URL(), "-admin", run.AdminURL(0), "-conns", strconv.Itoa(e.Conns),
		"-count", strconv.Itoa(count), "-out", outPath}
	cmd, err := target.Launch(argv, e.LoadCPUs, filepath.Join(e.WorkDir, fmt.Sprintf("bcast-%s-%d.log", name, round)), e.Root)
	if err != nil {
		return nil, err
	}
	limit := time.Duration(float64(e.Conns)/1000*float64(time.Second)) + time.Duration(count)*6*time.Second + 30*time.Second
	werr := target.Reap(cmd, limit)
	b, err := os.ReadFile(outPath)
	if err != nil {
		return nil, fmt.Errorf("wsbench: broadcast client: %w (wait: %v)", err, werr)
	}
	var res bclient.Result
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("wsbench: broadcast client output: %w", err)
	}
	if werr != nil {
		return &res, fmt.Errorf("wsbench: broadcast client: %w", werr)
	}
	return &res, nil
}
