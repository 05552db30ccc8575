package natsbus

import (
	"log/slog"
	"sync"
	"time"

	"wspush/server/internal/metrics"
)

// kind is a class of cluster error: something this node could not apply or
// read, which may leave it out of step with the other nodes.
type kind int

const (
	kindMetadata kind = iota // a stream message without JetStream metadata
	kindHeader               // a stream message whose wspush headers do not parse
	kindApply                // the local bus refused a stream message
	kindConsume              // the JetStream consumer reported an error
	nKinds
)

var kindNames = [nKinds]string{"metadata", "header", "apply", "consume"}

var kindMsgs = [nKinds]string{
	"natsbus: a stream message has no JetStream metadata; skipped",
	"natsbus: a stream message's wspush headers do not parse; skipped, this node may differ from the cluster",
	"natsbus: a stream message could not be applied; this node may differ from the cluster",
	"natsbus: the stream consumer reported an error",
}

// problemLogEvery bounds the log lines of one kind.
const problemLogEvery = 5 * time.Second

// problems counts every cluster error in wspush_cluster_errors_total{kind}
// and logs at most one line per kind per problemLogEvery, with the number
// of errors of that kind since the last line.
//
// Concurrency: report is called from the consumer's goroutine and from
// nats.go's error callbacks; mu guards logged and quiet.
type problems struct {
	log      *slog.Logger
	counters [nKinds]*metrics.Counter

	mu     sync.Mutex
	logged [nKinds]time.Time
	quiet  [nKinds]int // errors of each kind since its last line
}

func newProblems(log *slog.Logger, reg *metrics.Registry) *problems {
	p := &problems{log: log}
	for k := range nKinds {
		p.counters[k] = reg.NewCounter("wspush_cluster_errors_total",
			"Cluster errors by kind: stream messages this node could not read or apply, consumer errors.", "kind", kindNames[k])
	}
	return p
}

// report counts one error of kind k and logs it unless a line of that kind
// went out less than problemLogEvery ago; attrs are slog key-value pairs.
func (p *problems) report(k kind, err error, attrs ...any) {
	p.counters[k].Inc()
	now := time.Now()
	p.mu.Lock()
	p.quiet[k]++
	if !p.logged[k].IsZero() && now.Sub(p.logged[k]) < problemLogEvery {
		p.mu.Unlock()
		return
	}
	n := p.quiet[k]
	p.logged[k], p.quiet[k] = now, 0
	p.mu.Unlock()
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	p.log.Error(kindMsgs[k], append(attrs, "count", n)...)
}
