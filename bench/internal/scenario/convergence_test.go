package scenario

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeNodes answers like 3 nodes for 2 topics: node n holds local[n][t]
// subscribers; every node's cluster-wide count is the truth once round
// reaches lagUntil[n][t], one short before.
type fakeNodes struct {
	mu       sync.Mutex
	local    [][]int64
	lagUntil [][]int // rounds (calls for that pair) before the count is right
	calls    [][]int
	failOnce map[pair]bool
	failAt   map[pair]int // fail the pair's answer with this call number
	total    atomic.Int64
}

func (f *fakeNodes) fetch(_ context.Context, n int, topic string) (topicInfo, error) {
	f.total.Add(1)
	t := int(topic[1] - '0')
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[n][t]++
	if f.failAt[pair{n, t}] == f.calls[n][t] {
		return topicInfo{}, errors.New("down")
	}
	if f.failOnce[pair{n, t}] {
		delete(f.failOnce, pair{n, t})
		return topicInfo{}, errors.New("down")
	}
	var truth int64
	for _, row := range f.local {
		truth += row[t]
	}
	sub := truth
	if f.calls[n][t] < f.lagUntil[n][t] {
		sub--
	}
	return topicInfo{Subscribers: sub, Local: f.local[n][t]}, nil
}

func newFake(lag [][]int) *fakeNodes {
	f := &fakeNodes{local: [][]int64{{3, 0}, {3, 4}, {4, 4}}, lagUntil: lag, failOnce: map[pair]bool{}, failAt: map[pair]int{}}
	for range lag {
		f.calls = append(f.calls, make([]int, 2))
	}
	return f
}

func TestConvergeAtOnce(t *testing.T) {
	f := newFake([][]int{{0, 0}, {0, 0}, {0, 0}})
	m := newCountMatrix(3, []string{"t0", "t1"})
	cv := converge(context.Background(), m, f.fetch, time.Millisecond, time.Now().Add(5*time.Second), time.Now())
	// the first full round agrees: converged, nothing more asked
	if !cv.Converged || cv.Rounds != 1 || cv.Requests != 6 || f.total.Load() != 6 || cv.StaleCount != 0 {
		t.Errorf("%+v, %d requests", cv, f.total.Load())
	}
}

// TestConvergeLate: only the pairs still wrong are asked again, and a full
// round confirms before it counts as converged.
func TestConvergeLate(t *testing.T) {
	f := newFake([][]int{{0, 3}, {0, 0}, {2, 0}}) // node 0 t1 right from its 3rd answer, node 2 t0 from its 2nd
	m := newCountMatrix(3, []string{"t0", "t1"})
	cv := converge(context.Background(), m, f.fetch, time.Millisecond, time.Now().Add(5*time.Second), time.Now())
	// round 1: all 6, 2 wrong; round 2: those 2, node 0 t1 still wrong;
	// round 3: node 0 t1, right; round 4: all 6 confirm
	if !cv.Converged || cv.Rounds != 4 || cv.Requests != 6+2+1+6 || f.total.Load() != 15 || cv.Failed != 0 {
		t.Errorf("%+v, %d requests", cv, f.total.Load())
	}
	if f.calls[1][0] != 2 || f.calls[0][1] != 4 {
		t.Errorf("calls per pair %v: settled pairs were asked again before the confirming round", f.calls)
	}
}

// TestConvergeFailedAnswer: a pair that failed to answer leaves its
// topic's truth unknown, so the topic is asked again.
func TestConvergeFailedAnswer(t *testing.T) {
	f := newFake([][]int{{0, 0}, {0, 0}, {0, 0}})
	f.failOnce[pair{1, 1}] = true
	m := newCountMatrix(3, []string{"t0", "t1"})
	cv := converge(context.Background(), m, f.fetch, time.Millisecond, time.Now().Add(5*time.Second), time.Now())
	// round 1: (1,1) fails; t1's truth is unknown, so round 2 asks all
	// of t1's pairs again; round 3 confirms
	if !cv.Converged || cv.Failed != 1 || cv.Rounds != 3 || cv.Requests != 6+3+6 {
		t.Errorf("%+v", cv)
	}
}

// TestConvergeFailedConfirm: a pair that does not answer in the
// confirming round keeps the run from counting as converged on its old
// answer; another full round confirms.
func TestConvergeFailedConfirm(t *testing.T) {
	f := newFake([][]int{{2, 0}, {0, 0}, {0, 0}}) // node 0 t0 right from its 2nd answer
	f.failAt[pair{2, 1}] = 2                      // node 2 t1 fails in the confirming round (its 2nd call)
	m := newCountMatrix(3, []string{"t0", "t1"})
	cv := converge(context.Background(), m, f.fetch, time.Millisecond, time.Now().Add(5*time.Second), time.Now())
	// round 1: 6, (0,0) wrong; round 2: (0,0); round 3: 6, one failed;
	// round 4: 6 confirm
	if !cv.Converged || cv.Failed != 1 || cv.Rounds != 4 || cv.Requests != 6+1+6+6 {
		t.Errorf("%+v", cv)
	}
}

// TestConvergeNever: a count that stays wrong is reported at the
// deadline, with the node, topic, its count and the truth.
func TestConvergeNever(t *testing.T) {
	f := newFake([][]int{{0, 0}, {0, 1 << 30}, {0, 0}})
	m := newCountMatrix(3, []string{"t0", "t1"})
	start := time.Now()
	cv := converge(context.Background(), m, f.fetch, 20*time.Millisecond, start.Add(200*time.Millisecond), start)
	if cv.Converged || cv.StaleCount != 1 || len(cv.Stale) != 1 || cv.Stale[0] != "node 1 t1: 7 (local 4), true 8" {
		t.Errorf("%+v", cv)
	}
	if el := time.Since(start); el < 200*time.Millisecond || el > 2*time.Second || cv.Rounds < 3 {
		t.Errorf("polled %d rounds in %s, want until the 200ms deadline", cv.Rounds, el)
	}
	if clientCheckAfter(cv, ClusterConfig{Ticks: time.Second, PubAfter: time.Minute}) {
		t.Error("client check counted after a convergence that never came")
	}
}

func TestConvergeCancel(t *testing.T) {
	f := newFake([][]int{{0, 0}, {0, 1 << 30}, {0, 0}})
	m := newCountMatrix(3, []string{"t0", "t1"})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	cv := converge(ctx, m, f.fetch, 10*time.Second, start.Add(time.Hour), start)
	if cv.Converged || cv.StaleCount != 1 || time.Since(start) > 5*time.Second {
		t.Errorf("%+v after %s", cv, time.Since(start))
	}
}

func TestConvergeDeadlineAndClientCheck(t *testing.T) {
	c := ClusterConfig{Ticks: 20 * time.Second, PubAfter: 8 * time.Minute, PubEvery: 30 * time.Second, Publishes: 2, Settle: 30 * time.Second}
	launch := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	// 338 s plateau, 30 s max lease: 3 × 30 + 2 × 20 = 130 s later
	if got := convergeDeadline(launch.Add(338*time.Second), launch, 30*time.Second, c); got.Sub(launch) != 468*time.Second {
		t.Errorf("deadline %s after launch, want 468s", got.Sub(launch))
	}
	// a 2-minute max lease reaches past wsload's end (570 s): cut there
	if got := convergeDeadline(launch.Add(338*time.Second), launch, 2*time.Minute, c); got.Sub(launch) != c.Duration() {
		t.Errorf("deadline %s after launch, want wsload's end %s", got.Sub(launch), c.Duration())
	}
	for _, tc := range []struct {
		at   float64
		want bool
	}{{400, true}, {550, true}, {550.5, false}, {569, false}} {
		if got := clientCheckAfter(&Convergence{Converged: true, AtS: tc.at}, c); got != tc.want {
			t.Errorf("converged at %.1f s, wsload ends at 570 s with 20 s ticks: client check after = %v, want %v", tc.at, got, tc.want)
		}
	}
	if got := wsloadTopics(3); strings.Join(got, ",") != "t0,t1,t2" {
		t.Errorf("topics %q", got)
	}
}
