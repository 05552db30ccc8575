package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"wspush/bench/internal/procstat"
	"wspush/bench/internal/wsload"
	"wspush/loadgen/result"
)

// ClusterConfig is the "one publish to 1M clients through NATS" run: a
// nats-server with JetStream, Procs wspush nodes joined by it
// (docs/cluster.md), and one wsload publish run whose Conns subscribers of
// a single topic are spread over all nodes while every publish goes
// through node 0. The publishes start after the ramp and come one at a
// time, so a publish's end-to-end latency is the time it takes to reach
// every client. A zero field takes its default (WithDefaults).
type ClusterConfig struct {
	Conns     int           `json:"conns"`        // subscribers (1,000,000)
	Procs     int           `json:"procs"`        // wspush nodes (60)
	MaxConns  int           `json:"max_conns"`    // -max-conns per node (17,000)
	Rate      int           `json:"rate"`         // ramp, connections per second (4,000)
	Publishes int           `json:"publishes"`    // wsload -pub-count (3)
	PubEvery  time.Duration `json:"pub_every_ns"` // spacing of the publishes (1 min): -pub-rate 1/PubEvery
	PubAfter  time.Duration `json:"pub_after_ns"` // first publish after wsload's start (Conns/Rate × 1.25 + 20 s)
	Settle    time.Duration `json:"settle_ns"`    // run on after the last publish's slot (30 s)
	Grace     time.Duration `json:"grace_ns"`     // wsload -grace: wait for in-flight deliveries (60 s)
	Sources   string        `json:"sources"`      // wsload -sources (127.0.0.2-127.0.0.60)
	MinFreeG  float64       `json:"min_free_gib"` // refuse to start below this MemAvailable (16)
	Port      int           `json:"port"`         // node i listens on Port+i (9000)
	AdminPort int           `json:"admin_port"`   // node i's admin listener is AdminPort+i (10000)
	// Topics: the subscribers are spread over this many topics (client g
	// on topic g mod Topics), publishes round robin (1).
	Topics int `json:"topics"`
	// Ticks is the nodes' -push-interval: 0 = no ticks, unless Presence
	// (then 5 s). With ticks the run also measures the nodes' CPU per
	// tick over the tick phase (ClusterResult.TickPhase).
	Ticks time.Duration `json:"push_interval_ns"`
	// Presence: clients subscribe with "presence":true (wsload
	// -presence); at the end every connected client's last seen count of
	// its topic must equal the topic's subscribers.
	Presence bool `json:"presence"`
	// Bin is the directory holding the wspush and wsload executables;
	// "" = <root>/bin.
	Bin string `json:"-"`
}

// WithDefaults returns c with every zero field set to its default.
func (c ClusterConfig) WithDefaults() ClusterConfig {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Conns, 1_000_000)
	def(&c.Procs, 60)
	def(&c.MaxConns, 17_000)
	def(&c.Rate, 4000)
	def(&c.Publishes, 2)
	def(&c.Port, 9000)
	def(&c.AdminPort, 10000)
	def(&c.Topics, 1)
	if c.Presence && c.Ticks == 0 {
		c.Ticks = 5 * time.Second // counts ride on ticks
	}
	if c.PubEvery == 0 {
		c.PubEvery = time.Minute // one publish at a time: ~30 s to reach 1M here
	}
	if c.PubAfter == 0 && c.Rate > 0 {
		ramp := time.Duration(float64(c.Conns) / float64(c.Rate) * float64(time.Second))
		c.PubAfter = (ramp*5/4 + 20*time.Second).Round(time.Second)
	}
	if c.Settle == 0 {
		c.Settle = 30 * time.Second
	}
	if c.Grace == 0 {
		c.Grace = time.Minute
	}
	if c.Sources == "" {
		c.Sources = "127.0.0.2-127.0.0.60"
	}
	if c.MinFreeG == 0 {
		c.MinFreeG = 16
	}
	return c
}

// Validate checks c (with its defaults applied) for a run that can work.
func (c ClusterConfig) Validate() error {
	switch {
	case c.Conns < 1 || c.Procs < 1 || c.MaxConns < 1 || c.Rate < 1 || c.Publishes < 1:
		return errors.New("wsbench: cluster: -conns, -procs, -max-conns, -rate and -publishes must be positive")
	case c.Procs*c.MaxConns < c.Conns:
		return fmt.Errorf("wsbench: cluster: %d nodes × %d max-conns < %d connections", c.Procs, c.MaxConns, c.Conns)
	case c.PubEvery < 10*time.Millisecond || c.PubAfter < 0 || c.Settle < 0:
		return errors.New("wsbench: cluster: -pub-every must be at least 10ms, -pub-after and -settle not negative")
	case c.Topics < 1 || c.Topics > c.Conns:
		return errors.New("wsbench: cluster: -topics must be 1..conns")
	case c.Ticks < 0 || (c.Ticks > 0 && c.Ticks < 100*time.Millisecond):
		return errors.New("wsbench: cluster: -ticks must be 0 (none) or at least 100ms")
	case c.Grace < 0 || c.Grace > time.Minute:
		return errors.New("wsbench: cluster: -grace must be 0..1m (wsload's limit)")
	case c.Port < 1024 || c.AdminPort < 1024 || c.Port+c.Procs > 65536 || c.AdminPort+c.Procs > 65536:
		return errors.New("wsbench: cluster: node ports must lie in 1024..65535")
	case c.Port < c.AdminPort+c.Procs && c.AdminPort < c.Port+c.Procs:
		return fmt.Errorf("wsbench: cluster: WebSocket ports %d.. and admin ports %d.. overlap for %d nodes", c.Port, c.AdminPort, c.Procs)
	}
	return nil
}

// Duration is wsload's -duration: the ramp and the wait, every publish's
// slot, and the settle time.
func (c ClusterConfig) Duration() time.Duration {
	return c.PubAfter + time.Duration(c.Publishes)*c.PubEvery + c.Settle
}

// ClusterResult is what the cluster run reports.
type ClusterResult struct {
	Config          ClusterConfig `json:"config"`
	MemAvailBeforeG float64       `json:"mem_available_before_gib"`
	NATSPort        int           `json:"nats_port"`
	NATSVersion     string        `json:"nats_version"`
	WsloadDurationS float64       `json:"wsload_duration_s"`

	Established int64   `json:"conns_established"` // upgrades, reconnects included (wsload)
	Peak        int64   `json:"conns_peak"`        // most open at once (wsload)
	Final       int64   `json:"conns_final"`       // open at the end (wsload)
	AtPublish   int     `json:"conns_at_publish"`  // the nodes' own count just before the first publish
	RampS       float64 `json:"ramp_s"`            // until the nodes held every connection (0 = never)

	PublishesSent int64 `json:"publishes_sent"` // acknowledged by JetStream
	Deliveries    int64 `json:"deliveries"`     // topic messages received
	Expected      int64 `json:"expected"`       // deliveries owed (subscribers × publishes after their subscribe)
	Lost          int64 `json:"lost"`
	Gaps          int64 `json:"gaps"`
	Duplicates    int64 `json:"duplicates"`
	Reorders      int64 `json:"reorders"`
	HistoryGone   int64 `json:"history_gone"` // subscribers told that history they were owed is gone
	// AllReached: every one of Conns connections got every one of
	// Publishes publishes, without a gap or a signalled loss.
	AllReached bool `json:"all_reached"`

	// LatencyMS is end-to-end, from the node accepting the publish (the
	// message's ts) to wsload reading it, over every delivery; with one
	// publish at a time, Max is the time one publish took to reach all.
	LatencyMS  result.Percentiles `json:"latency_ms"`
	PerPublish []PublishWindow    `json:"per_publish"`

	Disconnects map[string]int64 `json:"disconnects"`
	Retries     int64            `json:"retries"` // connects tried again after a failure (wsload -retries)
	// NodeCloses: connections the nodes closed, by reason, summed at the
	// end of wsload's run ("client": the client went first, including
	// wsload's own closes at the end).
	NodeCloses map[string]int64 `json:"node_closes"`
	Errors     map[string]int64 `json:"errors"`

	NodesRSSBase int64   `json:"nodes_rss_base_bytes"` // summed, before any client
	NodesRSS     int64   `json:"nodes_rss_bytes"`      // summed, just before the first publish
	NodesRSSPeak int64   `json:"nodes_rss_peak_bytes"` // summed, highest sample
	RSSPerConn   float64 `json:"nodes_rss_per_conn_bytes"`
	NATSRSS      int64   `json:"nats_rss_bytes"` // just before the first publish
	NATSRSSPeak  int64   `json:"nats_rss_peak_bytes"`
	// RSSTotalPerConn is NodesRSS / AtPublish: the nodes' whole resident
	// set per connection (RSSPerConn subtracts the idle nodes).
	RSSTotalPerConn float64 `json:"nodes_rss_total_per_conn_bytes"`

	// With ticks: the nodes' CPU over the tick phase (nil without ticks
	// or when the phase was too short to measure), and the ticks wsload
	// received in the whole run, those carrying a presence field among
	// them.
	TickPhase     *TickPhase `json:"tick_phase,omitempty"`
	Ticks         int64      `json:"ticks_received,omitempty"`
	PresenceTicks int64      `json:"presence_ticks,omitempty"`
	// With Presence: the clients connected at the end that were checked,
	// whether every one's last count was its topic's true subscriber
	// count, and the topics where not (a few lines, and how many).
	PresenceSubs      int64    `json:"presence_subs,omitempty"`
	PresenceOK        bool     `json:"presence_ok,omitempty"`
	PresenceBad       []string `json:"presence_bad,omitempty"`
	PresenceBadTopics int      `json:"presence_bad_topics,omitempty"`
	// With Presence: the nodes' presence protocol counters at the end of
	// wsload's run (GET /v1/presence, summed; nil if none answered).
	PresenceProtocol *PresenceProtocol `json:"presence_protocol,omitempty"`
	// With Presence: whether and when every node's count of every topic
	// was the true count after the ramp (polled; nil when the plateau
	// never came). PresenceOK is the clients' check, apart.
	Convergence *Convergence `json:"presence_convergence,omitempty"`

	WsloadBound   bool            `json:"wsload_bound"`
	WsloadSummary string          `json:"wsload_summary"`
	WsloadPath    string          `json:"wsload_path"` // the raw result.json in the work directory
	Err           string          `json:"error,omitempty"`
	Wsload        json.RawMessage `json:"wsload,omitempty"`
}

// PublishWindow is one publish's share of wsload's per-second series: the
// seconds from its slot to the next publish's (the last one: to the end).
// Deliveries that arrive after -duration (during wsload's grace) are not in
// the series; they count in the totals only.
type PublishWindow struct {
	N          int     `json:"n"`    // 1-based
	AtS        float64 `json:"at_s"` // scheduled, seconds after wsload's start
	Deliveries int64   `json:"deliveries"`
	LagP50MS   float64 `json:"lag_p50_ms"`
	LagP99MS   float64 `json:"lag_p99_ms"`
	LagMaxMS   float64 `json:"lag_max_ms"` // until the last client had it
}

// Cluster runs c: it builds and starts nats-server, starts the wspush
// nodes, runs wsload publish and samples the processes' memory; every
// process it started is stopped before it returns, also on error and when
// ctx ends. The result is filled as far as the run got.
func Cluster(ctx context.Context, e *Env, c ClusterConfig) (*ClusterResult, error) {
	c = c.WithDefaults()
	r := &ClusterResult{Config: c}
	if err := c.Validate(); err != nil {
		return r, err
	}
	bin := c.Bin
	if bin == "" {
		bin = filepath.Join(e.Root, "bin")
	}
	m0, err := procstat.ReadMeminfo()
	if err != nil {
		return r, err
	}
	r.MemAvailBeforeG = float64(m0.MemAvailable) / (1 << 30)
	if r.MemAvailBeforeG < c.MinFreeG {
		return r, fmt.Errorf("wsbench: cluster: %.1f GiB available, need %.0f", r.MemAvailBeforeG, c.MinFreeG)
	}
	if err := portsFree(c); err != nil {
		return r, err
	}
	natsBin, err := buildNATS(ctx, e.Root, e.WorkDir)
	if err != nil {
		return r, err
	}
	r.NATSVersion = natsVersion(natsBin)
	f := &fleet{logDir: filepath.Join(e.WorkDir, "logs"), store: filepath.Join(e.WorkDir, "nats-store")}
	defer f.stop()
	if r.NATSPort, err = f.startNATS(ctx, natsBin, e.WorkDir); err != nil {
		return r, err
	}
	e.logf("cluster: nats-server %s on 127.0.0.1:%d; starting %d wspush nodes", r.NATSVersion, r.NATSPort, c.Procs)
	if err := f.startNodes(ctx, filepath.Join(bin, "wspush"), c, r.NATSPort, e.Root); err != nil {
		return r, err
	}
	r.NodesRSSBase, _ = procstat.SumRSS(f.nodePIDs())

	var (
		wg   sync.WaitGroup
		res  *wsload.Output
		werr error
	)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel() // ends the sampler below
		res, werr = wsload.Run(runCtx, e.Root, wsload.Args{Scenario: "publish", Bin: filepath.Join(bin, "wsload"),
			OutDir: e.WorkDir, Name: "cluster-wsload", Duration: c.Duration(), Live: true, Grace: c.Grace + 5*time.Minute,
			Flags: wsloadFlags(c)})
	}()
	f.sample(runCtx, e, c, r, start)
	wg.Wait()
	if c.Presence {
		r.PresenceProtocol = presenceProtocol(ctx, f.adminURLs())
	}
	r.NodeCloses = closesWhenEmpty(ctx, f.adminURLs(), 30*time.Second)
	if werr != nil {
		return r, werr
	}
	r.WsloadPath = filepath.Join(e.WorkDir, "cluster-wsload.json")
	fillFromWsload(r, res)
	return r, nil
}

// wsloadFlags is the wsload publish command line (without -duration and
// -out, which wsload.Run adds).
func wsloadFlags(c ClusterConfig) []string {
	url := fmt.Sprintf("ws://127.0.0.1:%d/ws", c.Port)
	if c.Procs > 1 {
		url = fmt.Sprintf("ws://127.0.0.1:%d-%d/ws", c.Port, c.Port+c.Procs-1)
	}
	return []string{"-url", url, "-admin", fmt.Sprintf("http://127.0.0.1:%d", c.AdminPort),
		"-conns", strconv.Itoa(c.Conns), "-rate", strconv.Itoa(c.Rate), "-topics", strconv.Itoa(c.Topics),
		"-sources", c.Sources, "-procs", "auto",
		// A connect that times out on the saturated machine is tried
		// again, as a real client would, so that all c.Conns subscribe.
		"-retries", "5",
		"-pub-after", c.PubAfter.String(), "-pub-count", strconv.Itoa(c.Publishes),
		"-pub-rate", strconv.FormatFloat(1/c.PubEvery.Seconds(), 'g', -1, 64),
		"-grace", c.Grace.String(), "-presence=" + strconv.FormatBool(c.Presence)}
}

// sample polls until ctx ends: the nodes' connection count until they hold
// every connection or the first publish is due (then it records memory at
// that plateau), and the processes' RSS peaks throughout.
func (f *fleet) sample(ctx context.Context, e *Env, c ClusterConfig, r *ClusterResult, start time.Time) {
	every := min(max(c.PubAfter/10, 250*time.Millisecond), 5*time.Second)
	// wsload starts its clock up to a few seconds after its launch (its
	// workers start together); sample a little before the first publish
	plateauBy := start.Add(c.PubAfter - min(c.PubAfter/4, 2*time.Second))
	admins := f.adminURLs()
	plateau, lastLog := false, time.Now()
	var (
		tm        tickMeter
		plateauAt time.Time
		converged func() // waits for the presence convergence poll
	)
	for {
		nodes, _ := procstat.SumRSS(f.nodePIDs())
		nats, _ := procstat.SumRSS([]int{f.nats.Process.Pid})
		r.NodesRSSPeak, r.NATSRSSPeak = max(r.NodesRSSPeak, nodes), max(r.NATSRSSPeak, nats)
		// The tick phase starts one tick interval and a presence period
		// after the plateau (every client has had its tick with the
		// final count; later ticks carry no count) and ends with the
		// last sample before the first publish.
		if plateau && c.Ticks > 0 && time.Since(plateauAt) >= c.Ticks+2*time.Second && time.Until(start.Add(c.PubAfter)) > every/2 {
			tm.read(ctx, f, start)
		}
		if !plateau {
			n, _ := sumStats(ctx, admins)
			full := n >= c.Conns
			if full && r.RampS == 0 {
				r.RampS = time.Since(start).Seconds()
			}
			if full || time.Now().After(plateauBy) {
				plateau, plateauAt = true, time.Now()
				if c.Presence {
					converged = startConverge(ctx, e, f, c, r, start)
				}
				r.AtPublish, r.NodesRSS, r.NATSRSS = n, nodes, nats
				if n > 0 {
					r.RSSPerConn = float64(nodes-r.NodesRSSBase) / float64(n)
					r.RSSTotalPerConn = float64(nodes) / float64(n)
				}
				e.logf("cluster: nodes hold %d connections; nodes' RSS %.2f GiB (%.0f B/conn), nats-server %.0f MiB",
					n, float64(nodes)/(1<<30), r.RSSPerConn, float64(nats)/(1<<20))
			} else if time.Since(lastLog) >= 10*time.Second {
				lastLog = time.Now()
				e.logf("cluster: nodes hold %d connections", n)
			}
		}
		select {
		case <-ctx.Done():
			r.TickPhase = tm.phase()
			if converged != nil {
				converged()
			}
			return
		case <-time.After(every):
		}
	}
}

// fillFromWsload copies wsload's figures into r.
func fillFromWsload(r *ClusterResult, res *wsload.Output) {
	c := r.Config
	r.WsloadDurationS = res.DurationS
	r.Established, r.Peak, r.Final = res.ConnsEstablished, res.ConnsPeak, res.ConnsFinal
	r.PublishesSent, r.Deliveries, r.Expected, r.Lost = res.Sent, res.Messages, res.Expected, res.Lost
	r.Gaps, r.Duplicates, r.Reorders = res.Gaps, res.Duplicates, res.Reorders
	r.HistoryGone = res.Errors["history_gone"]
	r.LatencyMS = res.LagMS
	r.Disconnects, r.Errors, r.Retries = res.Disconnects, res.Errors, res.Retries
	r.WsloadBound, r.WsloadSummary = res.Bottleneck.WsloadBound, res.Bottleneck.Summary
	r.Wsload = loadRaw(res.Raw)
	want := c.Owed()
	r.AllReached = r.PublishesSent == int64(c.Publishes) && r.Expected == want && r.Deliveries-r.Duplicates >= want &&
		r.Lost == 0 && r.Gaps == 0 && r.HistoryGone == 0
	r.PerPublish = PublishWindows(res.Series, c)
	r.Ticks, r.PresenceTicks = res.Ticks, res.PresenceTicks
	if c.Presence {
		fillPresence(r, res.Result)
	}
}

// PublishWindows splits the per-second series into one window per publish
// (see PublishWindow). Second t of the series covers (t−1 s, t s] after
// wsload's start.
func PublishWindows(series []result.Second, c ClusterConfig) []PublishWindow {
	var out []PublishWindow
	for i := 0; i < c.Publishes; i++ {
		at := c.PubAfter + time.Duration(i)*c.PubEvery
		// wsload's second T holds what arrived in [T, T+1) after its
		// start, and the first deliveries of a publish at 333 s are in 333.
		from, to := int(at/time.Second), math.MaxInt
		if i+1 < c.Publishes {
			to = int((at+c.PubEvery)/time.Second) - 1
		}
		var secs []result.Second
		for _, s := range series {
			if s.T >= from && s.T <= to {
				secs = append(secs, s)
			}
		}
		w := PublishWindow{N: i + 1, AtS: at.Seconds()}
		if st, err := wsload.SteadyState(&result.Result{Series: secs}, from); err == nil && st.Msgs > 0 {
			w.Deliveries, w.LagP50MS, w.LagP99MS, w.LagMaxMS = st.Msgs, st.LagP50MS, st.LagP99MS, st.LagMaxMS
		}
		out = append(out, w)
	}
	return out
}

// buildNATS builds nats-server from the module pinned in go.mod into dir.
func buildNATS(ctx context.Context, root, dir string) (string, error) {
	out := filepath.Join(dir, "nats-server")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("wsbench: %w", err)
	}
	if err := goBuild(ctx, root, out, "github.com/nats-io/nats-server/v2"); err != nil {
		return "", err
	}
	return out, nil
}
