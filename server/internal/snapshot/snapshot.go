// Package snapshot keeps the bus's topic state across a restart of a
// single node (-state-dir): on graceful shutdown, once nothing can publish
// any more, the state (each topic's epoch, last seq, newest value and the
// history still within the history TTL, and the broadcast seq) is written
// to DIR/state.bin, atomically; at start it is read back into a new bus,
// so that epochs and seqs continue and a resume across the restart replays
// exactly what the client missed.
//
// Load checks the whole file (magic, version, every length against what is
// left of the file and against the bus's caps, the CRC-32C at its end)
// while it builds a new bus that nothing else can see (bus.Restorer), and
// hands the bus out only if all of it passed: a truncated, corrupt, foreign
// or future-version file is refused with an error and nothing is loaded.
// Store.Restore then deletes the file before the server serves, so a crash
// (no new snapshot) can never reload stale state and give out a seq twice
// in one epoch: after a crash every topic starts a new epoch and resumers
// get history_gone.
//
// # Concurrency contract
//
// A Store is used by one goroutine at a time: Open and Restore at start,
// before anything is served; Run from the server's component group, which
// stops it (and so saves) after every component that publishes has stopped.
// Save seals the bus (bus.Export), so a publish that still arrives is
// refused rather than acknowledged and lost. Save and Load hold no state of
// their own.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"wspush/server/internal/bus"
)

// Config configures the state directory; zero means off.
type Config struct {
	// Dir is the directory of the state file (created if missing).
	Dir string
}

// File names in the state directory.
const (
	FileName = "state.bin"
	tmpName  = "state.tmp"
)

// Stats describes a save or a load.
type Stats struct {
	Topics   int
	Messages int   // history entries in the file
	Kept     int   // history entries loaded (not expired or over a cap)
	Bytes    int64 // the file's size
	Took     time.Duration
}

func (s Stats) attrs(load bool) []any {
	a := []any{"topics", s.Topics, "messages", s.Messages, "bytes", s.Bytes, "ms", s.Took.Milliseconds()}
	if load {
		a = append(a, "messages_kept", s.Kept)
	}
	return a
}

// Save seals b (it refuses publishes from now on) and writes its state to
// dir/state.bin: to state.tmp first, fsynced, then renamed over state.bin,
// and the directory fsynced.
func Save(dir string, b *bus.Bus) (Stats, error) {
	start := time.Now()
	tmp := filepath.Join(dir, tmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return Stats{}, fmt.Errorf("snapshot: %w", err)
	}
	e := newEncoder(f)
	err = b.Export(e)
	if err == nil {
		err = e.finish()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, FileName))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return Stats{}, fmt.Errorf("snapshot: save %s: %w", filepath.Join(dir, FileName), err)
	}
	e.stats.Took = time.Since(start)
	return e.stats, nil
}

// Load reads dir/state.bin into a new bus delivering to local, configured
// by cfg, as of now: history older than now minus the history TTL is
// dropped, and the bus's caps hold. A missing file is an error that
// matches fs.ErrNotExist. Nothing is loaded unless the whole file passes.
func Load(dir string, cfg bus.Config, local bus.Local, now time.Time) (*bus.Bus, Stats, error) {
	start := time.Now()
	path := filepath.Join(dir, FileName)
	f, err := os.Open(path)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, Stats{}, fmt.Errorf("snapshot: %w", err)
	}
	// A load allocates what it keeps: collecting while it runs is mostly
	// wasted work (at the server's -gc-percent 25 it doubles the time).
	if old := debug.SetGCPercent(-1); old >= 0 {
		defer debug.SetGCPercent(old)
		debug.SetGCPercent(max(old, 400))
	} else {
		debug.SetGCPercent(old)
	}
	b, st, err := decodeBus(f, fi.Size(), cfg, local, now)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("snapshot: %s: %w", path, err)
	}
	st.Took = time.Since(start)
	return b, st, nil
}

// decodeBus reads a state file of size bytes from r into a new bus.
func decodeBus(r io.Reader, size int64, cfg bus.Config, local bus.Local, now time.Time) (*bus.Bus, Stats, error) {
	maxData := cfg.MaxDataBytes
	if maxData <= 0 {
		maxData = bus.DefaultMaxDataBytes
	}
	rs := bus.NewRestorer(cfg, local, now.UnixNano())
	st := Stats{Bytes: size}
	if err := newDecoder(r, size).decode(rs, maxData, &st); err != nil {
		return nil, Stats{}, err
	}
	b, err := rs.Bus()
	if err != nil {
		return nil, Stats{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	st.Topics, st.Kept = rs.Loaded()
	return b, st, nil
}

// Store is the state directory of a running server.
type Store struct {
	dir string
	log *slog.Logger
	bus *bus.Bus // the bus Restore made; saved by Run
}

// Open checks that cfg.Dir is a directory the server can write (creating
// it if missing) and removes a temporary file a failed save left there.
func Open(cfg Config, log *slog.Logger) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("snapshot: no state directory")
	}
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("snapshot: state directory: %w", err)
	}
	probe := filepath.Join(cfg.Dir, tmpName)
	f, err := os.OpenFile(probe, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("snapshot: state directory not writable: %w", err)
	}
	_ = f.Close()
	if err := os.Remove(probe); err != nil {
		return nil, fmt.Errorf("snapshot: state directory: %w", err)
	}
	return &Store{dir: cfg.Dir, log: log}, nil
}

// Restore returns the bus to serve: the saved one if there is a state file
// (which is then deleted, and the deletion made durable, before Restore
// returns), a new one if there is none. Call it once, before serving.
func (s *Store) Restore(cfg bus.Config, local bus.Local, now time.Time) (*bus.Bus, error) {
	b, st, err := Load(s.dir, cfg, local, now)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.log.Info("no saved state: starting fresh", "dir", s.dir)
		s.bus = bus.New(cfg, local)
		return s.bus, nil
	case err != nil:
		return nil, err
	}
	s.log.Info("state loaded", st.attrs(true)...)
	path := filepath.Join(s.dir, FileName)
	if err := os.Remove(path); err != nil {
		return nil, fmt.Errorf("snapshot: remove the loaded %s: %w", path, err)
	}
	if err := syncDir(s.dir); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	s.bus = b
	return b, nil
}

// Run waits until ctx is done, then saves the bus Restore returned (if it
// ran). Run it as the component stopped last: after everything that can
// publish.
func (s *Store) Run(ctx context.Context) error {
	<-ctx.Done()
	if s.bus == nil {
		return nil
	}
	st, err := Save(s.dir, s.bus)
	if err != nil {
		return err
	}
	s.log.Info("state saved", st.attrs(false)...)
	return nil
}
