package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"wspush/bench/internal/procstat"
	"wspush/loadgen/result"
)

// TickPhase is what the wspush nodes spent on ticks in the cluster run's
// tick phase: from one tick interval and 2 s after the moment they hold
// every connection (or the plateau sample) — by then every client has had
// the tick that tells it the final count — until the last sample before
// the first publish, when ticks (and the nodes' presence reports) are the
// only traffic.
type TickPhase struct {
	FromS      float64 `json:"from_s"` // seconds after wsload's launch
	ToS        float64 `json:"to_s"`
	CPUSeconds float64 `json:"nodes_cpu_s"` // the nodes' user+system CPU in the window, summed
	Ticks      uint64  `json:"ticks"`       // ticks the nodes pushed in the window (their /v1/stats pushes)
	// CPUPerTickUS is CPUSeconds / Ticks in µs; CPUCores is CPUSeconds
	// over the window; TicksPerSec is Ticks over the window.
	CPUPerTickUS float64 `json:"nodes_cpu_per_tick_us"`
	CPUCores     float64 `json:"nodes_cpu_cores"`
	TicksPerSec  float64 `json:"ticks_per_s"`
	NATSCPUS     float64 `json:"nats_cpu_s"` // nats-server's CPU in the window
}

// tickMeter holds the first and the latest reading of the tick phase; it
// belongs to the sampler goroutine.
type tickMeter struct {
	first, last tickReading
	n           int
}

type tickReading struct {
	at       time.Duration // since wsload's launch
	cpu, nat float64
	pushes   uint64
}

// read takes one reading of the nodes' CPU and pushes; a reading that
// failed (a node not answering) is skipped.
func (m *tickMeter) read(ctx context.Context, f *fleet, start time.Time) {
	cpu, err := procstat.SumCPU(f.nodePIDs())
	if err != nil {
		return
	}
	pushes, err := sumPushes(ctx, f.adminURLs())
	if err != nil {
		return
	}
	nat, _ := procstat.CPUSeconds(f.nats.Process.Pid)
	rd := tickReading{at: time.Since(start), cpu: cpu, nat: nat, pushes: pushes}
	if m.n == 0 {
		m.first = rd
	}
	m.last = rd
	m.n++
}

// phase is the tick phase between the first and the last reading, or nil
// with fewer than two readings or no tick in between.
func (m *tickMeter) phase() *TickPhase {
	if m.n < 2 || m.last.pushes <= m.first.pushes || m.last.at <= m.first.at {
		return nil
	}
	return tickPhaseOf(m.first, m.last)
}

func tickPhaseOf(a, b tickReading) *TickPhase {
	win := (b.at - a.at).Seconds()
	p := &TickPhase{FromS: a.at.Seconds(), ToS: b.at.Seconds(), CPUSeconds: b.cpu - a.cpu, Ticks: b.pushes - a.pushes, NATSCPUS: b.nat - a.nat}
	p.CPUPerTickUS = p.CPUSeconds * 1e6 / float64(p.Ticks)
	p.CPUCores = p.CPUSeconds / win
	p.TicksPerSec = float64(p.Ticks) / win
	return p
}

// sumPushes adds up every node's /v1/stats pushes (ticks written); any
// node that does not answer fails the reading, which would otherwise
// count too few.
func sumPushes(ctx context.Context, admins []string) (uint64, error) {
	cl := http.Client{Timeout: 2 * time.Second}
	var sum uint64
	for _, a := range admins {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, a+"/v1/stats", nil)
		if err != nil {
			return 0, fmt.Errorf("wsbench: %w", err)
		}
		resp, err := cl.Do(req)
		if err != nil {
			return 0, fmt.Errorf("wsbench: %w", err)
		}
		var st struct {
			Pushes *uint64 `json:"pushes"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		_ = resp.Body.Close()
		if err != nil || st.Pushes == nil {
			return 0, fmt.Errorf("wsbench: %s/v1/stats: no pushes (%v)", a, err)
		}
		sum += *st.Pushes
	}
	return sum, nil
}

// fillPresence checks the counts the clients saw last (result.Result's
// PresenceCheck over the merged workers) into r.
func fillPresence(r *ClusterResult, res *result.Result) {
	for _, t := range res.TopicStats {
		r.PresenceSubs += t.PresSubs
	}
	r.PresenceBad, r.PresenceBadTopics = res.PresenceCheck(5)
	r.PresenceOK = r.PresenceBadTopics == 0 && r.PresenceSubs > 0 && r.Errors["presence_bad"] == 0 && r.Errors["presence_unasked"] == 0
}

// Owed is the deliveries every publish owes when all Conns clients are
// subscribed: publish i goes to topic i mod Topics, whose subscribers are
// the clients g with g mod Topics = that topic.
func (c ClusterConfig) Owed() int64 {
	topics := max(c.Topics, 1)
	var n int64
	for i := 0; i < c.Publishes; i++ {
		k := i % topics
		subs := c.Conns / topics
		if k < c.Conns%topics {
			subs++
		}
		n += int64(subs)
	}
	return n
}

// PresenceProtocol is the nodes' presence protocol counters (the
// server's presence.Stats), summed over the nodes that answered.
type PresenceProtocol struct {
	Nodes int `json:"nodes"` // nodes that answered
	// MinNodesSeen is the fewest nodes any node counted (all of them
	// when every node knows every other one).
	MinNodesSeen     int    `json:"min_nodes_seen"`
	SyncsSent        uint64 `json:"syncs_sent"`
	SyncsReceived    uint64 `json:"syncs_received"`
	MaxSyncsReceived uint64 `json:"max_syncs_received"` // by one node
	ProbesSent       uint64 `json:"probes_sent"`
	ProbesReceived   uint64 `json:"probes_received"`
	FullReports      uint64 `json:"full_reports"`
	Gaps             uint64 `json:"gaps"`
	GoneOnce         uint64 `json:"gone_once"`
	GoneDrops        uint64 `json:"gone_drops"`
	SilentDrops      uint64 `json:"silent_drops"`
	Stalls           uint64 `json:"stalls"`
}

// presenceProtocol reads every node's GET /v1/presence; nodes that do not
// answer are left out (nil when none answers).
func presenceProtocol(ctx context.Context, admins []string) *PresenceProtocol {
	cl := &http.Client{Timeout: 5 * time.Second}
	p := &PresenceProtocol{}
	for _, a := range admins {
		var st struct {
			Nodes          int    `json:"nodes"`
			SyncsSent      uint64 `json:"syncs_sent"`
			SyncsReceived  uint64 `json:"syncs_received"`
			ProbesSent     uint64 `json:"probes_sent"`
			ProbesReceived uint64 `json:"probes_received"`
			FullReports    uint64 `json:"full_reports"`
			Gaps           uint64 `json:"gaps"`
			GoneOnce       uint64 `json:"gone_once"`
			GoneDrops      uint64 `json:"gone_drops"`
			SilentDrops    uint64 `json:"silent_drops"`
			Stalls         uint64 `json:"stalls"`
		}
		if getJSON(ctx, cl, a+"/v1/presence", &st) != nil {
			continue
		}
		if p.Nodes == 0 || st.Nodes < p.MinNodesSeen {
			p.MinNodesSeen = st.Nodes
		}
		p.Nodes++
		p.SyncsSent += st.SyncsSent
		p.SyncsReceived += st.SyncsReceived
		p.MaxSyncsReceived = max(p.MaxSyncsReceived, st.SyncsReceived)
		p.ProbesSent += st.ProbesSent
		p.ProbesReceived += st.ProbesReceived
		p.FullReports += st.FullReports
		p.Gaps += st.Gaps
		p.GoneOnce += st.GoneOnce
		p.GoneDrops += st.GoneDrops
		p.SilentDrops += st.SilentDrops
		p.Stalls += st.Stalls
	}
	if p.Nodes == 0 {
		return nil
	}
	return p
}
