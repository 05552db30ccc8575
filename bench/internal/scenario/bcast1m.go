package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"wspush/bench/internal/procstat"
	"wspush/bench/internal/target"
	"wspush/bench/internal/wsload"
	"wspush/loadgen/result"
)

// Bcast1MConfig is `wsbench bcast1m`: one broadcast at a time to Conns
// clients spread over Procs server processes of one target, everything on
// this machine, so that wspush and the floor peer are measured in the same
// layout. Targets: "floor" and "wspush" get every broadcast POSTed to all
// their processes at once (each process fans out to its own clients);
// "wspush-nats" is the cluster layout (docs/cluster.md): the nodes are
// joined by a nats-server and the broadcast is POSTed to node 0 only.
type Bcast1MConfig struct {
	Target     string        `json:"target"`
	Conns      int           `json:"conns"`
	Procs      int           `json:"procs"`
	MaxConns   int           `json:"max_conns"` // wspush -max-conns per process
	Rate       int           `json:"rate"`      // ramp, connections/s
	Broadcasts int           `json:"broadcasts"`
	Every      time.Duration `json:"every_ns"`     // between broadcasts
	After      time.Duration `json:"after_ns"`     // first broadcast, after wsload's launch
	Sources    string        `json:"sources"`      // wsload -sources
	MinFreeG   float64       `json:"min_free_gib"` // refuse to start below this MemAvailable
	Port       int           `json:"port"`         // process i listens on Port+i (9000)
	AdminPort  int           `json:"admin_port"`   // and AdminPort+i (10000)
	Bin        string        `json:"-"`            // wspush, wsload, peer-floor; "" = <root>/bin
	// LoadProcs is wsload's -procs (0 = auto: by its open-file limit,
	// 52 for 1M), e.g. to keep the 1M process layout at fewer clients.
	LoadProcs int `json:"load_procs,omitempty"`
	// GoMaxProcs, when set, is the GOMAXPROCS of every process started
	// (servers, nats-server, wsload and its workers).
	GoMaxProcs int `json:"gomaxprocs,omitempty"`
}

// Bcast1MTargets are the targets bcast1m knows.
var Bcast1MTargets = []string{"floor", "wspush", "wspush-nats"}

// WithDefaults fills the zero fields.
func (c Bcast1MConfig) WithDefaults() Bcast1MConfig {
	if c.Conns == 0 {
		c.Conns = 1_000_000
	}
	if c.Procs == 0 {
		c.Procs = 60
	}
	if c.MaxConns == 0 {
		c.MaxConns = 17_000
	}
	if c.Rate == 0 {
		c.Rate = 5000
	}
	if c.Broadcasts == 0 {
		c.Broadcasts = 2
	}
	if c.Every == 0 {
		c.Every = 45 * time.Second
	}
	if c.After == 0 {
		ramp := time.Duration(float64(c.Conns) / float64(c.Rate) * float64(time.Second))
		c.After = (ramp*5/4 + 20*time.Second).Round(time.Second)
	}
	if c.Sources == "" {
		c.Sources = "127.0.0.2-127.0.0.60"
	}
	if c.MinFreeG == 0 {
		c.MinFreeG = 16
	}
	if c.Port == 0 {
		c.Port = 9000
	}
	if c.AdminPort == 0 {
		c.AdminPort = 10000
	}
	return c
}

// Validate checks a defaulted c.
func (c Bcast1MConfig) Validate() error {
	ok := false
	for _, t := range Bcast1MTargets {
		ok = ok || t == c.Target
	}
	switch {
	case !ok:
		return fmt.Errorf("wsbench: bcast1m: -target must be one of %v", Bcast1MTargets)
	case c.Conns < 1 || c.Procs < 1 || c.Procs > 100 || c.Rate < 1 || c.Broadcasts < 1 || c.Broadcasts > 10:
		return errors.New("wsbench: bcast1m: -conns, -rate positive, -procs 1..100, -broadcasts 1..10")
	case c.Procs*c.MaxConns < c.Conns:
		return fmt.Errorf("wsbench: bcast1m: %d procs × %d max-conns < %d connections", c.Procs, c.MaxConns, c.Conns)
	case c.Every < time.Second:
		return errors.New("wsbench: bcast1m: -every must be at least 1s")
	}
	return nil
}

// Bcast1MResult is one bcast1m run.
type Bcast1MResult struct {
	Config          Bcast1MConfig `json:"config"`
	MemAvailBeforeG float64       `json:"mem_available_before_gib"`
	AtFirst         int           `json:"conns_at_first"` // clients connected (wsload's count) at the first broadcast
	Established     int64         `json:"conns_established"`
	Deliveries      int64         `json:"deliveries"`
	Expected        int64         `json:"expected"` // AtFirst × broadcasts
	Gaps            int64         `json:"gaps"`
	Duplicates      int64         `json:"duplicates"`
	Broadcasts      []BcastRound  `json:"broadcasts"`
	// IdleServerCores and IdleWsloadCores: the CPU the servers and
	// wsload used in the 10 s before the first broadcast, with every
	// client connected and nothing sent (the floor's slot wheels and
	// wsload's reporters tick on).
	IdleServerCores float64   `json:"idle_server_cores"`
	IdleWsloadCores float64   `json:"idle_wsload_cores"`
	idleFrom        time.Time // the idle window, for wsload's series
	idleTo          time.Time
	WsloadBound     bool             `json:"wsload_bound"`
	WsloadSummary   string           `json:"wsload_summary"`
	Errors          map[string]int64 `json:"errors,omitempty"`
	Disconnects     map[string]int64 `json:"disconnects,omitempty"`
	Err             string           `json:"error,omitempty"`
	Wsload          json.RawMessage  `json:"wsload,omitempty"`
}

// BcastRound is one broadcast: when it went out, how long each process
// needed for its share, what the clients saw and where the CPU went.
type BcastRound struct {
	N     int       `json:"n"`
	At    time.Time `json:"at"`    // the POSTs were sent
	Conns int       `json:"conns"` // the processes' clients just before
	// POSTMS: each POST's round trip (floor: answered once its process has
	// written to all its clients, so this is that process's fan-out time;
	// wspush: answered once the message is queued to its shards).
	POSTMS []float64 `json:"post_ms"`
	// DoneMS: per process, from At until its delivered counter had grown
	// by its client count (wspush, 100 ms polls; floor: POSTMS).
	DoneMS []float64 `json:"done_ms"`
	// Arrival at the clients, from the server's ts (wsload): first, p50,
	// p99 and last delivery, over the window of this broadcast.
	FirstMS    float64 `json:"first_ms"`
	P50MS      float64 `json:"p50_ms"`
	P99MS      float64 `json:"p99_ms"`
	LastMS     float64 `json:"last_ms"`
	Deliveries int64   `json:"deliveries"`
	// Over WindowS seconds from At: CPU seconds of the server processes
	// (nats-server included for wspush-nats), of the whole machine, and
	// vmstat's averages.
	WindowS     float64 `json:"window_s"`
	ServerCPUS  float64 `json:"server_cpu_s"`
	MachineCPUS float64 `json:"machine_cpu_s"`
	// WsloadCPUS: wsload's own CPU (its per-second series) over the same
	// seconds; what the machine spent besides server and wsload was
	// the kernel's softirq work outside them and other processes.
	WsloadCPUS   float64 `json:"wsload_cpu_s"`
	RunQueueAvg  float64 `json:"vmstat_r_avg"`
	RunQueueMax  int     `json:"vmstat_r_max"`
	CtxSwitchAvg float64 `json:"vmstat_cs_avg"`
	UserPct      float64 `json:"vmstat_us_avg"`
	SysPct       float64 `json:"vmstat_sy_avg"`
	IdlePct      float64 `json:"vmstat_id_avg"`
}

// Bcast1M runs c; every process it started is stopped before it returns.
func Bcast1M(ctx context.Context, e *Env, c Bcast1MConfig) (*Bcast1MResult, error) {
	c = c.WithDefaults()
	r := &Bcast1MResult{Config: c}
	if err := c.Validate(); err != nil {
		return r, err
	}
	bin := c.Bin
	if bin == "" {
		bin = filepath.Join(e.Root, "bin")
	}
	if c.GoMaxProcs > 0 {
		// inherited by every child started below (this process's own
		// GOMAXPROCS was fixed at its start)
		if err := os.Setenv("GOMAXPROCS", strconv.Itoa(c.GoMaxProcs)); err != nil {
			return r, fmt.Errorf("wsbench: bcast1m: %w", err)
		}
		defer os.Unsetenv("GOMAXPROCS")
	}
	m0, err := procstat.ReadMeminfo()
	if err != nil {
		return r, err
	}
	r.MemAvailBeforeG = float64(m0.MemAvailable) / (1 << 30)
	if r.MemAvailBeforeG < c.MinFreeG {
		return r, fmt.Errorf("wsbench: bcast1m: %.1f GiB available, need %.0f", r.MemAvailBeforeG, c.MinFreeG)
	}
	cc := ClusterConfig{Conns: c.Conns, Procs: c.Procs, MaxConns: c.MaxConns, Port: c.Port, AdminPort: c.AdminPort}.WithDefaults()
	if err := cc.Validate(); err != nil {
		return r, err
	}
	if err := portsFree(cc); err != nil {
		return r, err
	}
	var pids []int
	var admins []string
	for i := 0; i < c.Procs; i++ {
		admins = append(admins, fmt.Sprintf("http://127.0.0.1:%d", cc.AdminPort+i))
	}
	switch c.Target {
	case "wspush-nats":
		natsBin, err := buildNATS(ctx, e.Root, e.WorkDir)
		if err != nil {
			return r, err
		}
		f := &fleet{logDir: filepath.Join(e.WorkDir, "logs"), store: filepath.Join(e.WorkDir, "nats-store")}
		defer f.stop()
		port, err := f.startNATS(ctx, natsBin, e.WorkDir)
		if err != nil {
			return r, err
		}
		if err := f.startNodes(ctx, filepath.Join(bin, "wspush"), cc, port, e.Root); err != nil {
			return r, err
		}
		pids = append(f.nodePIDs(), f.nats.Process.Pid)
	default:
		spec := target.Spec{Name: c.Target, Root: e.Root, Procs: c.Procs, BasePort: cc.Port, AdminBase: cc.AdminPort,
			Interval: 24 * time.Hour, LogDir: filepath.Join(e.WorkDir, "logs")}
		if c.Bin != "" {
			// target.Binary is <root>/bin/<name>: a root whose bin is c.Bin
			spec.Root = filepath.Join(e.WorkDir, "binroot")
			if err := os.MkdirAll(spec.Root, 0o755); err != nil {
				return r, fmt.Errorf("wsbench: bcast1m: %w", err)
			}
			abs, err := filepath.Abs(bin)
			if err != nil {
				return r, fmt.Errorf("wsbench: bcast1m: %w", err)
			}
			if err := os.Symlink(abs, filepath.Join(spec.Root, "bin")); err != nil {
				return r, fmt.Errorf("wsbench: bcast1m: %w", err)
			}
		}
		if c.Target == "wspush" {
			spec.MaxConns, spec.Extra = c.MaxConns, []string{"-push-interval", "0"} // no ticks
		}
		run, err := target.Start(ctx, spec)
		if err != nil {
			return r, err
		}
		defer run.Stop(60 * time.Second)
		pids = run.PIDs()
	}
	vm, err := startVmstat(e.WorkDir)
	if err != nil {
		return r, err
	}
	defer vm.stop()

	dur := c.After + time.Duration(c.Broadcasts)*c.Every
	loadProcs := "auto"
	if c.LoadProcs > 0 {
		loadProcs = strconv.Itoa(c.LoadProcs)
	}
	launch := time.Now()
	var (
		wg   sync.WaitGroup
		res  *wsload.Output
		werr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		res, werr = wsload.Run(ctx, e.Root, wsload.Args{Scenario: "publish", Bin: filepath.Join(bin, "wsload"),
			OutDir: e.WorkDir, Name: "bcast1m-wsload", Duration: dur, Live: true, Grace: 6 * time.Minute,
			Flags: []string{"-broadcast", "-topics", "1", "-url", fmt.Sprintf("ws://127.0.0.1:%d-%d/ws", cc.Port, cc.Port+c.Procs-1),
				"-admin", admins[0], "-conns", strconv.Itoa(c.Conns), "-rate", strconv.Itoa(c.Rate),
				"-sources", c.Sources, "-procs", loadProcs, "-retries", "5", "-grace", "30s"}})
	}()
	targets := admins
	if c.Target == "wspush-nats" {
		targets = admins[:1] // NATS takes it to the other nodes
	}
	for k := 0; k < c.Broadcasts && ctx.Err() == nil; k++ {
		at := launch.Add(c.After + time.Duration(k)*c.Every)
		if k == 0 {
			// wait for the ramp (the servers' own count), at most until
			// the slot
			for time.Now().Before(at.Add(-10*time.Second)) && ctx.Err() == nil {
				time.Sleep(time.Second)
			}
			// the servers' idle cost: CPU over the last 10 s before it
			t0 := time.Now()
			c0, _ := procstat.SumCPU(pids)
			time.Sleep(time.Until(at))
			c1, _ := procstat.SumCPU(pids)
			r.IdleServerCores = (c1 - c0) / time.Since(t0).Seconds()
			r.idleFrom, r.idleTo = t0, at
			n, _ := sumStatsOrHealth(ctx, c.Target, admins)
			e.logf("bcast1m %s: %d clients connected before broadcast 1", c.Target, n)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(at)):
		}
		round := broadcastRound(ctx, e, c, k, admins, targets, pids, vm, min(c.Every-2*time.Second, 40*time.Second))
		r.Broadcasts = append(r.Broadcasts, round)
		if k == 0 {
			r.AtFirst = round.Conns
		}
	}
	wg.Wait()
	if werr != nil {
		return r, werr
	}
	r.Wsload = loadRaw(res.Raw)
	r.Established, r.Deliveries, r.Gaps, r.Duplicates = res.ConnsEstablished, res.Messages, res.Gaps, res.Duplicates
	r.Expected = int64(r.AtFirst) * int64(c.Broadcasts)
	r.WsloadBound, r.WsloadSummary = res.Bottleneck.WsloadBound, res.Bottleneck.Summary
	r.Errors, r.Disconnects = res.Errors, res.Disconnects
	// A broadcast's window of wsload's per-second series: from a second
	// before it (nothing else is delivered) to the next one's.
	start := res.Started
	if start.IsZero() {
		start = launch
	}
	if n := 0; !r.idleFrom.IsZero() {
		from, to := int(r.idleFrom.Sub(start)/time.Second)+1, int(r.idleTo.Sub(start)/time.Second)
		for _, s := range res.Series {
			if s.T >= from && s.T <= to {
				r.IdleWsloadCores += s.CPU
				n++
			}
		}
		if n > 0 {
			r.IdleWsloadCores /= float64(n)
		}
	}
	for k := range r.Broadcasts {
		b := &r.Broadcasts[k]
		from := int(b.At.Sub(start)/time.Second) - 1
		to := from + int(c.Every/time.Second) - 1
		if k == len(r.Broadcasts)-1 {
			to = 1 << 30
		}
		arrivals(b, res.Series, from, to)
		for _, s := range res.Series {
			if s.T > from && float64(s.T-from) <= b.WindowS+1 {
				b.WsloadCPUS += s.CPU
			}
		}
	}
	return r, nil
}

// broadcastRound POSTs broadcast k to targets at once and measures it.
func broadcastRound(ctx context.Context, e *Env, c Bcast1MConfig, k int, admins, targets []string, pids []int, vm *vmstat, window time.Duration) BcastRound {
	b := BcastRound{N: k + 1, POSTMS: make([]float64, len(targets)), DoneMS: make([]float64, len(admins))}
	before := make([]int64, len(admins))
	conns := make([]int64, len(admins))
	if c.Target != "floor" {
		for i, a := range admins {
			conns[i], before[i] = nodeStats(ctx, a)
			b.Conns += int(conns[i])
		}
	} else {
		b.Conns, _ = sumStatsOrHealth(ctx, c.Target, admins)
	}
	cpu0, _ := procstat.SumCPU(pids)
	m0, _ := procstat.MachineBusySeconds()
	b.At = time.Now()
	var wg sync.WaitGroup
	body := fmt.Sprintf(`{"data":{"n":%d}}`, k)
	for i, a := range targets {
		wg.Go(func() {
			cl := http.Client{Timeout: window}
			resp, err := cl.Post(a+"/v1/broadcast", "application/json", strings.NewReader(body))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					b.POSTMS[i] = ms(time.Since(b.At))
					return
				}
			}
			b.POSTMS[i] = -1
		})
	}
	if c.Target == "floor" {
		wg.Wait()
		copy(b.DoneMS, b.POSTMS)
	} else {
		for i, a := range admins {
			wg.Go(func() {
				deadline := b.At.Add(window)
				for time.Now().Before(deadline) && ctx.Err() == nil {
					if _, d := nodeStats(ctx, a); d-before[i] >= conns[i] {
						b.DoneMS[i] = ms(time.Since(b.At))
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
				b.DoneMS[i] = -1
			})
		}
		wg.Wait()
	}
	time.Sleep(time.Until(b.At.Add(window)))
	cpu1, _ := procstat.SumCPU(pids)
	m1, _ := procstat.MachineBusySeconds()
	b.WindowS = time.Since(b.At).Seconds()
	b.ServerCPUS, b.MachineCPUS = cpu1-cpu0, m1-m0
	// vmstat over the part of the window in which the fan-out ran
	last := b.At
	for _, d := range b.DoneMS {
		last = maxTime(last, b.At.Add(time.Duration(d*float64(time.Millisecond))))
	}
	b.RunQueueAvg, b.RunQueueMax, b.CtxSwitchAvg, b.UserPct, b.SysPct, b.IdlePct = vm.summary(b.At, last.Add(time.Second))
	e.logf("bcast1m %s #%d: processes done in %.0f–%.0f ms; server CPU %.1f s, machine %.1f s over %.0f s; vmstat r %.1f (max %d), cs %.0f/s, us %.0f sy %.0f id %.0f",
		c.Target, b.N, minPos(b.DoneMS), maxF(b.DoneMS), b.ServerCPUS, b.MachineCPUS, b.WindowS, b.RunQueueAvg, b.RunQueueMax, b.CtxSwitchAvg, b.UserPct, b.SysPct, b.IdlePct)
	return b
}

// arrivals fills b's client-side figures from wsload's seconds from..to.
func arrivals(b *BcastRound, series []result.Second, from, to int) {
	h := result.NewHist()
	for _, s := range series {
		if s.T < from || s.T > to || s.Msgs == 0 {
			continue
		}
		b.Deliveries += s.Msgs
		if s.LagHist == "" {
			continue
		}
		if sh, err := result.DecodeHist(s.LagHist); err == nil {
			h.Merge(sh)
		}
	}
	if h.Count() == 0 {
		return
	}
	b.FirstMS = float64(h.Quantile(0)) / 1000
	b.P50MS = float64(h.Quantile(50)) / 1000
	b.P99MS = float64(h.Quantile(99)) / 1000
	b.LastMS = float64(h.Quantile(100)) / 1000
}

// nodeStats is a wspush node's open connections and messages delivered.
func nodeStats(ctx context.Context, admin string) (conns, delivered int64) {
	cl := http.Client{Timeout: 2 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/v1/stats", nil)
	if err != nil {
		return 0, 0
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	var st struct {
		Connections int64  `json:"connections"`
		Delivered   uint64 `json:"messages_delivered"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&st)
	return st.Connections, int64(st.Delivered)
}

// sumStatsOrHealth is the targets' summed connection count (floor: its
// /healthz).
func sumStatsOrHealth(ctx context.Context, name string, admins []string) (int, error) {
	if name != "floor" {
		n, _ := sumStats(ctx, admins)
		return n, nil
	}
	cl := http.Client{Timeout: 2 * time.Second}
	n := 0
	for _, a := range admins {
		resp, err := cl.Get(a + "/healthz")
		if err != nil {
			continue
		}
		var h struct {
			Connections int `json:"connections"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&h)
		_ = resp.Body.Close()
		n += h.Connections
	}
	return n, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func maxF(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func minPos(xs []float64) float64 {
	m := -1.0
	for _, x := range xs {
		if x > 0 && (m < 0 || x < m) {
			m = x
		}
	}
	return m
}
