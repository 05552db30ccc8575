// Package result is the wsload/v1 schema: the result.json that wsload
// (loadgen/) writes and wsbench (bench/, through bench/internal/wsload)
// reads. It is the one definition of that wire format for both programs,
// which is why it is not internal; docs/loadgen.md documents it field by
// field. It also holds wsload's HdrHistogram helpers and the exact merge
// of several workers' results (histograms are merged bucket by bucket,
// never by averaging percentiles).
//
// Stability: the JSON is the contract. Under Schema "wsload/v1" the field
// names, their types and their meanings stay as they are; new fields may be
// added (readers must tolerate their absence in older files, as with
// "retries"), and anything that would rename, remove or redefine a field
// bumps Schema. The Go side that readers rely on is the types that mirror
// the JSON one to one (Result, Params, Percentiles, Second, TopicStat,
// Self, Bottleneck), Schema, Parse, Load and Save, and for the histograms
// DecodeHist, NewHist, Hist.Merge and Hist.Percentiles (the encoding: V2
// compressed base64, µs, 1 µs to 1 h, 3 significant digits). The rest
// (Merge, Finish, FinishTopics, Summary, Hist's recording side) is wsload's
// own machinery, exported for its internal packages; it may change with
// wsload as long as the JSON does not.
//
// Concurrency: values here are plain data; a Hist is not safe for
// concurrent use and is guarded by whoever owns it.
package result

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Schema identifies this layout of result.json.
const Schema = "wsload/v1"

// Result is one run (or the merge of several worker processes' runs).
type Result struct {
	Schema   string    `json:"schema"`
	Scenario string    `json:"scenario"`
	Started  time.Time `json:"started"`
	// DurationS is the measured wall time in seconds, ramp included.
	DurationS float64 `json:"duration_s"`
	Params    Params  `json:"params"`

	ConnsTarget      int   `json:"conns_target"`
	ConnsEstablished int64 `json:"conns_established"` // successful upgrades, reconnects included
	ConnsPeak        int64 `json:"conns_peak"`        // most connections open at once
	ConnsFinal       int64 `json:"conns_final"`       // open when the run ended
	// ConnectLastS is the time from the start to the latest successful
	// upgrade, in s (µs resolution; reconnects included): in connect, when
	// the ramp was complete, so conns_established / connect_last_s is the
	// handshake rate. Merged: the latest worker's. Absent in older files.
	ConnectLastS float64 `json:"connect_last_s,omitempty"`

	Messages       int64 `json:"messages"` // data messages received (ticks, msgs, pongs; publish and churn: msgs only)
	Welcomes       int64 `json:"welcomes"`
	Gaps           int64 `json:"gaps"` // sequence numbers that never arrived
	Duplicates     int64 `json:"duplicates"`
	Reorders       int64 `json:"reorders"`
	WelcomeMissing int64 `json:"welcome_missing"` // a data message came before the welcome
	Sent           int64 `json:"sent"`            // pings (echo), publishes (publish), subs
	Expected       int64 `json:"expected"`        // deliveries owed (publish, echo); 0 elsewhere
	Lost           int64 `json:"lost"`            // expected but never received by the end
	// Ticks: ticks received in publish and churn, where they are
	// background traffic (not in Messages); PresenceTicks: of them, those
	// that carried a presence field (-presence).
	Ticks         int64 `json:"ticks,omitempty"`
	PresenceTicks int64 `json:"presence_ticks,omitempty"`

	Errors      map[string]int64 `json:"errors"`            // failed connects and protocol trouble, by class
	Retries     int64            `json:"retries,omitempty"` // connects made again after a failed one (-retries)
	Disconnects map[string]int64 `json:"disconnects"`       // established connections that ended early, by class

	LagMS     Percentiles `json:"lag_ms"`     // receive − server's intended time
	ConnectMS Percentiles `json:"connect_ms"` // TCP connect + upgrade
	LagHist   string      `json:"lag_hist"`   // HdrHistogram V2, µs, base64
	ConnHist  string      `json:"connect_hist"`

	// TopicStats: per-topic sums behind Expected and Lost (publish, churn).
	TopicStats []TopicStat `json:"topic_stats,omitempty"`

	Series     []Second   `json:"series"`
	Self       Self       `json:"self"`
	Bottleneck Bottleneck `json:"bottleneck"`
}

// Params are the knobs of the run, for the record.
type Params struct {
	URL       string  `json:"url"`
	Admin     string  `json:"admin,omitempty"`
	Rate      float64 `json:"rate"`
	Sources   int     `json:"sources"`
	Procs     int     `json:"procs"`
	Pollers   int     `json:"pollers"`
	Topics    int     `json:"topics,omitempty"`
	PubRate   float64 `json:"pub_rate,omitempty"`
	PubAfterS float64 `json:"pub_after_s,omitempty"`
	PubCount  int     `json:"pub_count,omitempty"`
	PingRate  float64 `json:"ping_rate,omitempty"`
	ChurnRate float64 `json:"churn_rate,omitempty"`
	// Retries and RetryBackoffS are -retries and -retry-backoff (s).
	Retries       int     `json:"retries,omitempty"`
	RetryBackoffS float64 `json:"retry_backoff_s,omitempty"`
	Presence      bool    `json:"presence,omitempty"` // -presence
	DurationS     float64 `json:"hold_s"`
}

// Percentiles of a latency in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
}

// Second is one point of the per-second series.
type Second struct {
	T        int     `json:"t"`        // seconds since start
	Conns    int64   `json:"conns"`    // open at the end of the second
	Connects int64   `json:"connects"` // upgrades completed in the second
	Msgs     int64   `json:"msgs"`     // messages received in the second
	Errors   int64   `json:"errors"`   // connect errors + disconnects in the second
	Gaps     int64   `json:"gaps"`     // change of the missing count
	LagP50   float64 `json:"lag_p50"`
	LagP99   float64 `json:"lag_p99"`
	LagMax   float64 `json:"lag_max"`
	CPU      float64 `json:"cpu_cores"` // wsload's CPU, in cores
	LagHist  string  `json:"lag_hist,omitempty"`
}

// Self is wsload's own cost.
type Self struct {
	CPUSeconds      float64 `json:"cpu_s"`
	CPUAvgCores     float64 `json:"cpu_avg_cores"`
	CPUPeakCores    float64 `json:"cpu_peak_cores"`
	PollerBusyPeak  float64 `json:"poller_busy_peak"` // busiest poller thread, fraction of a core
	RSSPeakBytes    int64   `json:"rss_peak_bytes"`
	HeapBytes       int64   `json:"heap_bytes"` // Go heap in use at peak connections
	RSSPerConn      float64 `json:"rss_per_conn_bytes"`
	HeapPerConn     float64 `json:"heap_per_conn_bytes"`
	CPUPerMsgUS     float64 `json:"cpu_per_msg_us"`
	SchedDelayP99MS float64 `json:"sched_delay_p99_ms"` // lateness of a 10 ms timer
	RampBehindMaxMS float64 `json:"ramp_behind_max_ms"` // worst lateness of the connect schedule
	MachineCPUPeak  float64 `json:"machine_cpu_peak"`   // whole machine, fraction of all cores
	// CoresAvailable is the CPU wsload could use (GOMAXPROCS or the CPUs
	// it may run on, whichever is smaller, shared by its worker processes),
	// the yardstick of the verdict; absent in older files.
	CoresAvailable float64 `json:"cores_available,omitempty"`
}

// Bottleneck is wsload's judgement of itself. WsloadBound is true when
// wsload limited the run (Cause CauseSaturated); Cause says which of
// "wsload is saturated", "the machine is busy" and "neither" held. Cause
// was added under wsload/v1: files written before it lack the field ("").
type Bottleneck struct {
	WsloadBound bool     `json:"wsload_bound"`
	Cause       string   `json:"cause,omitempty"`
	Reasons     []string `json:"reasons"`
	Summary     string   `json:"summary"`
}

// Values of Bottleneck.Cause.
const (
	// CauseSaturated: wsload used (nearly) all the CPU available to it or
	// its queues backed up; its latency and throughput understate the server.
	CauseSaturated = "wsload_saturated"
	// CauseMachineBusy: wsload kept up with its own work but its timer ran
	// late while it used little CPU: other processes held the cores, and the
	// measured latency includes waiting for them.
	CauseMachineBusy = "machine_busy"
	// CauseNone: neither.
	CauseNone = "none"
)

// Load reads a result.json.
func Load(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	r, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("result: %s: %w", path, err)
	}
	return r, nil
}

// Parse decodes a result.json already in memory (such as the copy wsbench
// embeds in its own result files) and checks its schema.
func Parse(b []byte) (*Result, error) {
	r, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	return r, nil
}

// parse is Parse without the package prefix on its errors.
func parse(b []byte) (*Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r.Schema != Schema {
		return nil, fmt.Errorf("schema %q, want %q", r.Schema, Schema)
	}
	return &r, nil
}

// Save writes r as indented JSON.
func Save(path string, r *Result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("result: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("result: %w", err)
	}
	return nil
}

// TopicStat is one topic's bookkeeping in one process (publish, churn):
// how many subscribers it has there, the sums of their highest and their
// base (subscribed-at) sequence numbers, and the highest publish the
// process saw acknowledged. Sums merge exactly across workers.
//
// With -presence, PresSubs is the topic's subscribers still connected at
// the end, PresSeen how many of them a tick had told the topic's count,
// and PresMin and PresMax the lowest and highest last count they saw (0
// when none did); these merge exactly too (PresenceCheck).
type TopicStat struct {
	Subs     int64  `json:"subs"`
	SumMax   uint64 `json:"sum_max"`
	SumBase  uint64 `json:"sum_base"`
	LastPub  uint64 `json:"last_pub"`
	PresSubs int64  `json:"presence_subs,omitempty"`
	PresSeen int64  `json:"presence_seen,omitempty"`
	PresMin  int64  `json:"presence_min,omitempty"`
	PresMax  int64  `json:"presence_max,omitempty"`
}

// AddPresence counts one connected subscriber whose last seen count was
// last (0: no tick carried one).
func (t *TopicStat) AddPresence(last int64) {
	t.PresSubs++
	if last <= 0 {
		return
	}
	t.mergePresence(1, last, last)
}

func (t *TopicStat) mergePresence(seen, lo, hi int64) {
	if seen == 0 {
		return
	}
	if t.PresSeen == 0 || lo < t.PresMin {
		t.PresMin = lo
	}
	t.PresMax = max(t.PresMax, hi)
	t.PresSeen += seen
}

// PresenceCheck checks the presence counts of a whole run (all workers
// merged): on every topic, every subscriber connected at the end must
// have seen, last, the topic's true count — the number of them. It
// returns one line per topic that fails (nil: all right), at most limit
// lines (0: no limit), and how many topics failed.
func (r *Result) PresenceCheck(limit int) (bad []string, topics int) {
	for k, t := range r.TopicStats {
		var why string
		switch {
		case t.PresSubs == 0:
			continue
		case t.PresSeen < t.PresSubs:
			why = fmt.Sprintf("%d of %d subscribers never got a count", t.PresSubs-t.PresSeen, t.PresSubs)
		case t.PresMin != t.PresSubs || t.PresMax != t.PresSubs:
			why = fmt.Sprintf("last counts %d..%d, want %d", t.PresMin, t.PresMax, t.PresSubs)
		default:
			continue
		}
		topics++
		if limit == 0 || len(bad) < limit {
			bad = append(bad, fmt.Sprintf("topic %d: %s", k, why))
		}
	}
	return bad, topics
}

// FinishTopics sets Expected (deliveries owed: every subscriber, every
// message published after it subscribed) and Lost (holes plus the tail a
// subscriber never got) from TopicStats.
func (r *Result) FinishTopics() {
	if len(r.TopicStats) == 0 {
		return
	}
	var exp, tail int64
	for _, t := range r.TopicStats {
		owedTo := t.LastPub * uint64(t.Subs)
		if owedTo > t.SumBase {
			exp += int64(owedTo - t.SumBase)
		}
		if owedTo > t.SumMax {
			tail += int64(owedTo - t.SumMax)
		}
	}
	r.Expected, r.Lost = exp, r.Gaps+tail
}
