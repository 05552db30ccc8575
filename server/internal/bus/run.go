package bus

import (
	"context"
	"time"
)

// SweepInterval is how often Run forgets idle topics (Sweep).
const SweepInterval = time.Minute

// Run sweeps idle topics every SweepInterval until ctx is done, then
// returns nil. The bus holds nothing else to release.
func (b *Bus) Run(ctx context.Context) error {
	tick := time.NewTicker(SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			b.Sweep(now)
		}
	}
}
