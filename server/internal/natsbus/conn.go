package natsbus

import "github.com/nats-io/nats.go"

// Conn returns the bus's NATS connection, for the features that share it
// over core NATS (presence); they must be stopped before the bus's Run
// returns, which closes it.
func (b *Bus) Conn() *nats.Conn { return b.nc }
