package scenario

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"wspush/bench/internal/env"
)

// Schema identifies the layout of bench/results/*.json.
const Schema = "wsbench/v1"

// File is one scenario's results as written to bench/results: the
// environment, the method knobs and per-target outcomes (with the raw
// wsload results inside the trials).
type File struct {
	Schema     string            `json:"schema"`
	Scenario   string            `json:"scenario"` // fixed|idle|ticks|broadcast|connect|onemillion|cluster|cluster-ticks
	Mode       string            `json:"mode"`     // quick|full|onemillion|cluster
	Started    time.Time         `json:"started"`
	Finished   time.Time         `json:"finished"`
	Env        env.Info          `json:"env"`
	Pinning    Pinning           `json:"pinning"`
	Conns      int               `json:"conns"`
	Rate       int               `json:"rate"`
	Rounds     int               `json:"rounds"`
	Targets    []string          `json:"targets"`
	Ticks      []TicksResult     `json:"ticks,omitempty"`
	Fixed      []FixedResult     `json:"fixed,omitempty"`
	Idle       []IdleResult      `json:"idle,omitempty"`
	Connect    []ConnectResult   `json:"connect,omitempty"`
	Broadcast  []BroadcastResult `json:"broadcast,omitempty"`
	OneMillion *OneMillionResult `json:"onemillion,omitempty"`
	Cluster    *ClusterResult    `json:"cluster,omitempty"`
	Bcast1M    *Bcast1MResult    `json:"bcast1m,omitempty"`
	Notes      []string          `json:"notes,omitempty"`
}

// Save writes f as indented JSON.
func (f *File) Save(path string) error {
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("wsbench: %w", err)
	}
	return nil
}

// ErrNotWsbench marks a JSON file that is not a wsbench result, such as a
// raw wsload result.json kept next to them in bench/results.
var ErrNotWsbench = errors.New("not a wsbench result")

// LoadFile reads a bench/results file; a file of another schema gives an
// error that wraps ErrNotWsbench.
func LoadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("wsbench: %w", err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("wsbench: %s: %w", path, err)
	}
	if f.Schema != Schema {
		return nil, fmt.Errorf("wsbench: %s: schema %q, want %s: %w", path, f.Schema, Schema, ErrNotWsbench)
	}
	return &f, nil
}
