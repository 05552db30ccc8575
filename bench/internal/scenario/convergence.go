package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Convergence is whether, and when, every node's cluster-wide count of
// every topic (GET /v1/presence/{topic} subscribers) equalled the topic's
// true count — the sum of the nodes' local counts (the same answers'
// local) — after the ramp. Polling starts when the nodes hold every
// connection (or at the plateau sample) and ends when every node agrees
// for every topic, at the deadline (plateau + 3 × the longest max lease a
// node reported + 2 tick intervals), or when wsload's run ends, whichever
// comes first. The clients' own check (wsload's, at its end) counts only if
// it came at least one tick interval after the nodes converged: a client
// learns a changed count on its next tick.
type Convergence struct {
	FromS      float64 `json:"from_s"`     // polling began, seconds after wsload's launch
	DeadlineS  float64 `json:"deadline_s"` // the bound, seconds after wsload's launch
	MaxLeaseMS int64   `json:"max_lease_ms"`
	Converged  bool    `json:"converged"`
	// AtS: the round in which every node agreed (confirmed by a full
	// round); AfterS: AtS − FromS.
	AtS    float64 `json:"at_s,omitempty"`
	AfterS float64 `json:"after_s,omitempty"`
	Rounds int     `json:"rounds"`
	// Requests is GET /v1/presence/{topic} calls made; Failed those
	// without an answer (the pair stays pending).
	Requests int `json:"requests"`
	Failed   int `json:"failed"`
	// Stale: when polling ended unconverged, a few of the disagreeing
	// (node, topic) counts, and how many there were.
	Stale      []string `json:"stale,omitempty"`
	StaleCount int      `json:"stale_count,omitempty"`
	// ClientCheckAfter: wsload's check (at -duration after its launch
	// at the earliest) came at least one tick interval after AtS.
	ClientCheckAfter bool `json:"client_check_after_converged"`
}

// topicInfo is one node's answer for one topic.
type topicInfo struct {
	Subscribers int64 `json:"subscribers"`
	Local       int64 `json:"local"`
}

// fetchFunc asks node n for topic's presence.
type fetchFunc func(ctx context.Context, n int, topic string) (topicInfo, error)

// countMatrix is the latest answer of every node for every topic; it
// belongs to the polling goroutine (the fetchers write disjoint rows).
type countMatrix struct {
	topics []string
	info   [][]topicInfo // [node][topic]
	known  [][]bool
}

func newCountMatrix(nodes int, topics []string) *countMatrix {
	m := &countMatrix{topics: topics, info: make([][]topicInfo, nodes), known: make([][]bool, nodes)}
	for n := range nodes {
		m.info[n] = make([]topicInfo, len(topics))
		m.known[n] = make([]bool, len(topics))
	}
	return m
}

// pair is one node's count of one topic.
type pair struct{ node, topic int }

// disagreeing is every pair not yet answered or whose cluster-wide count
// differs from the topic's true count (the sum of the nodes' local
// counts); a topic with a node not yet answered counts every one of its
// pairs as disagreeing, its truth being unknown.
func (m *countMatrix) disagreeing() []pair {
	var out []pair
	for t := range m.topics {
		truth, complete := m.truth(t)
		for n := range m.info {
			if !complete || m.info[n][t].Subscribers != truth {
				out = append(out, pair{n, t})
			}
		}
	}
	return out
}

func (m *countMatrix) truth(t int) (sum int64, complete bool) {
	for n := range m.info {
		if !m.known[n][t] {
			return 0, false
		}
		sum += m.info[n][t].Local
	}
	return sum, true
}

// describe is a few lines on the disagreeing pairs.
func (m *countMatrix) describe(ps []pair, limit int) []string {
	var out []string
	for _, p := range ps[:min(len(ps), limit)] {
		truth, complete := m.truth(p.topic)
		switch {
		case !m.known[p.node][p.topic]:
			out = append(out, fmt.Sprintf("node %d %s: no answer", p.node, m.topics[p.topic]))
		case !complete:
			out = append(out, fmt.Sprintf("node %d %s: %d (local %d), true count unknown", p.node, m.topics[p.topic],
				m.info[p.node][p.topic].Subscribers, m.info[p.node][p.topic].Local))
		default:
			out = append(out, fmt.Sprintf("node %d %s: %d (local %d), true %d", p.node, m.topics[p.topic],
				m.info[p.node][p.topic].Subscribers, m.info[p.node][p.topic].Local, truth))
		}
	}
	return out
}

// poll asks for the pairs given, one goroutine per node (its topics in
// turn, so at most one request per node at a time), and returns how many
// requests it made and how many failed.
func (m *countMatrix) poll(ctx context.Context, ps []pair, fetch fetchFunc) (reqs, failed int) {
	byNode := map[int][]int{}
	for _, p := range ps {
		byNode[p.node] = append(byNode[p.node], p.topic)
	}
	var (
		wg sync.WaitGroup
		mu sync.Mutex // guards failed
	)
	for n, ts := range byNode {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, t := range ts {
				in, err := fetch(ctx, n, m.topics[t])
				if err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
					continue
				}
				m.info[n][t], m.known[n][t] = in, true
			}
		}()
	}
	wg.Wait()
	return len(ps), failed
}

// allPairs is every (node, topic).
func (m *countMatrix) allPairs() []pair {
	out := make([]pair, 0, len(m.info)*len(m.topics))
	for n := range m.info {
		for t := range m.topics {
			out = append(out, pair{n, t})
		}
	}
	return out
}

// converge polls until every node agrees on every topic, until stop or
// until ctx ends: the first round asks every pair, the later ones only
// the pairs that disagreed; when none is left a full round confirms it
// (locals could have moved), and only that makes it converged. since is
// the clock the result's seconds count from.
func converge(ctx context.Context, m *countMatrix, fetch fetchFunc, every time.Duration, stop, since time.Time) *Convergence {
	cv := &Convergence{FromS: time.Since(since).Seconds(), DeadlineS: stop.Sub(since).Seconds()}
	pending, confirming := m.allPairs(), true
	for {
		reqs, failed := m.poll(ctx, pending, fetch)
		cv.Rounds++
		cv.Requests += reqs
		cv.Failed += failed
		bad := m.disagreeing()
		if len(bad) == 0 && confirming && failed == 0 {
			cv.Converged, cv.AtS = true, time.Since(since).Seconds()
			cv.AfterS = cv.AtS - cv.FromS
			return cv
		}
		if len(bad) == 0 { // (or the confirming round had failures)
			pending, confirming = m.allPairs(), true
		} else {
			pending, confirming = bad, false
		}
		wait := min(every, time.Until(stop))
		if wait <= 0 || ctx.Err() != nil {
			cv.StaleCount, cv.Stale = len(bad), m.describe(bad, 8)
			return cv
		}
		select {
		case <-ctx.Done():
			cv.StaleCount, cv.Stale = len(bad), m.describe(bad, 8)
			return cv
		case <-time.After(wait):
		}
	}
}

// wsloadTopics is wsload's topic names (loadgen's topicName: "t<k>").
func wsloadTopics(k int) []string {
	out := make([]string, k)
	for i := range out {
		out[i] = "t" + strconv.Itoa(i)
	}
	return out
}

// httpFetch asks the nodes' GET /v1/presence/{topic}.
func httpFetch(admins []string) fetchFunc {
	cl := &http.Client{Timeout: 10 * time.Second}
	return func(ctx context.Context, n int, topic string) (topicInfo, error) {
		var in topicInfo
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, admins[n]+"/v1/presence/"+topic, nil)
		if err != nil {
			return in, fmt.Errorf("wsbench: %w", err)
		}
		resp, err := cl.Do(req)
		if err != nil {
			return in, fmt.Errorf("wsbench: %w", err)
		}
		defer func() { _ = resp.Body.Close() }()
		if resp.StatusCode != http.StatusOK {
			return in, fmt.Errorf("wsbench: %s/v1/presence/%s: %s", admins[n], topic, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(&in); err != nil {
			return in, fmt.Errorf("wsbench: %s/v1/presence/%s: %w", admins[n], topic, err)
		}
		return in, nil
	}
}

// maxLeaseOf is the longest max_lease_ms the nodes' GET /v1/presence
// shows (30 s, the default, when none answers).
func maxLeaseOf(ctx context.Context, admins []string) time.Duration {
	cl := &http.Client{Timeout: 5 * time.Second}
	var most int64
	for _, a := range admins {
		var st struct {
			MaxLeaseMS int64 `json:"max_lease_ms"`
		}
		if getJSON(ctx, cl, a+"/v1/presence", &st) == nil {
			most = max(most, st.MaxLeaseMS)
		}
	}
	if most <= 0 {
		return 30 * time.Second
	}
	return time.Duration(most) * time.Millisecond
}

// convergeDeadline is the polling bound after the plateau: 3 × the max
// lease + 2 tick intervals, cut at wsload's end (its -duration after the
// launch), after which it closes its connections.
func convergeDeadline(plateau, launch time.Time, maxLease time.Duration, c ClusterConfig) time.Time {
	return minTime(plateau.Add(3*maxLease+2*c.Ticks), launch.Add(c.Duration()))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// clientCheckAfter tells whether wsload's check, at its -duration after
// the launch at the earliest, came a tick interval or more after the
// nodes converged.
func clientCheckAfter(cv *Convergence, c ClusterConfig) bool {
	return cv != nil && cv.Converged && cv.AtS+c.Ticks.Seconds() <= c.Duration().Seconds()
}

// startConverge polls the fleet's presence counts from the plateau on
// (Convergence); the returned function waits for it and fills r.
func startConverge(ctx context.Context, e *Env, f *fleet, c ClusterConfig, r *ClusterResult, launch time.Time) (wait func()) {
	admins := f.adminURLs()
	done := make(chan *Convergence, 1)
	go func() {
		plateau := time.Now()
		lease := maxLeaseOf(ctx, admins)
		stop := convergeDeadline(plateau, launch, lease, c)
		m := newCountMatrix(len(admins), wsloadTopics(c.Topics))
		cv := converge(ctx, m, httpFetch(admins), min(max(c.Ticks/4, time.Second), 5*time.Second), stop, launch)
		cv.MaxLeaseMS = lease.Milliseconds()
		if cv.Converged {
			e.logf("cluster: every node's presence counts right at %.0f s (%.0f s after the plateau, %d rounds)", cv.AtS, cv.AfterS, cv.Rounds)
		} else {
			e.logf("cluster: presence counts not converged by %.0f s: %d pairs stale, %q", cv.DeadlineS, cv.StaleCount, cv.Stale)
		}
		done <- cv
	}()
	return func() {
		cv := <-done
		cv.ClientCheckAfter = clientCheckAfter(cv, c)
		r.Convergence = cv
	}
}
