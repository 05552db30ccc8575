package result

import (
	"path/filepath"
	"testing"
)

func part(vals []int64, sec []int64) *Result {
	h, s := NewHist(), NewHist()
	for _, v := range vals {
		h.Record(v)
	}
	for _, v := range sec {
		s.Record(v)
	}
	return &Result{
		Schema: Schema, Scenario: "ticks", ConnsTarget: 10, ConnsEstablished: 10, ConnsPeak: 10,
		Messages: int64(len(vals)), Gaps: 1, Duplicates: 2,
		Errors:  map[string]int64{"refused": 1},
		Retries: 3,
		LagHist: h.Encode(), LagMS: h.Percentiles(),
		Series: []Second{{T: 1, Msgs: int64(len(sec)), LagHist: s.Encode()}},
		Self:   Self{CPUSeconds: 1, RSSPeakBytes: 1000, HeapBytes: 500},
	}
}

func TestMergeExact(t *testing.T) {
	var a, b, all []int64
	for i := int64(1); i <= 1000; i++ {
		a = append(a, i*10)         // 10 µs .. 10 ms
		b = append(b, 50_000+i*100) // 50 ms .. 150 ms: very different shape
	}
	all = append(append(all, a...), b...)
	m, err := Merge([]*Result{part(a, a[:10]), part(b, b[:5])})
	if err != nil {
		t.Fatal(err)
	}
	want := NewHist()
	for _, v := range all {
		want.Record(v)
	}
	if m.LagMS != want.Percentiles() {
		t.Fatalf("merged %+v, want %+v", m.LagMS, want.Percentiles())
	}
	// averaging the two p50s would give ~55 ms; the true p50 is ~10 ms
	if m.LagMS.P50 > 11 {
		t.Fatalf("p50 %.2f looks averaged", m.LagMS.P50)
	}
	if m.Messages != 2000 || m.Gaps != 2 || m.Duplicates != 4 || m.Errors["refused"] != 2 || m.Retries != 6 || m.ConnsTarget != 20 {
		t.Fatalf("counters %+v", m)
	}
	if len(m.Series) != 1 || m.Series[0].Msgs != 15 {
		t.Fatalf("series %+v", m.Series)
	}
	if m.Self.RSSPerConn != 100 || m.Self.HeapPerConn != 50 {
		t.Fatalf("self %+v", m.Self)
	}
	// round trip through a file keeps it exact
	p := filepath.Join(t.TempDir(), "r.json")
	if err := Save(p, m); err != nil {
		t.Fatal(err)
	}
	back, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	h, err := DecodeHist(back.LagHist)
	if err != nil || h.Percentiles() != want.Percentiles() {
		t.Fatalf("reloaded histogram differs: %v", err)
	}
	if _, err := Merge([]*Result{part(a, nil), {Schema: Schema, Scenario: "echo"}}); err == nil {
		t.Fatal("merged different scenarios")
	}
}

func TestFinishTopics(t *testing.T) {
	r := &Result{Gaps: 2, TopicStats: []TopicStat{
		{Subs: 2, SumMax: 9 + 10, SumBase: 0 + 5, LastPub: 10}, // one sub missed the last message
	}}
	r.FinishTopics()
	if r.Expected != 15 || r.Lost != 3 {
		t.Fatalf("expected %d lost %d, want 15 and 3", r.Expected, r.Lost)
	}
}

// A worker that skipped seconds (starved of CPU) still counts its
// connections in them; message counts are not invented.
func TestMergeCarriesLevelsOverSkippedSeconds(t *testing.T) {
	a, b := part(nil, nil), part(nil, nil)
	a.Series = []Second{{T: 1, Conns: 100, Msgs: 5}, {T: 2, Conns: 100, Msgs: 5}, {T: 3, Conns: 100, Msgs: 5}, {T: 4, Conns: 100, Msgs: 5}}
	b.Series = []Second{{T: 1, Conns: 50, Msgs: 1}, {T: 3, Conns: 60, Msgs: 9}} // skipped 2, and 4 (ended behind)
	for _, p := range []*Result{a, b} {
		for i := range p.Series {
			p.Series[i].LagHist = NewHist().Encode()
		}
	}
	m, err := Merge([]*Result{a, b})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ conns, msgs int64 }{{150, 6}, {150, 5}, {160, 14}, {160, 5}}
	if len(m.Series) != len(want) {
		t.Fatalf("%d seconds, want %d", len(m.Series), len(want))
	}
	for i, w := range want {
		if s := m.Series[i]; s.Conns != w.conns || s.Msgs != w.msgs {
			t.Errorf("second %d: conns %d msgs %d, want %d %d", s.T, s.Conns, s.Msgs, w.conns, w.msgs)
		}
	}
}

// TestMergeCause: a run is saturated if any worker was, else machine-busy
// if any worker's timer waited for the machine; cores available add up.
func TestMergeCause(t *testing.T) {
	mk := func(c string) *Result {
		p := part([]int64{10}, nil)
		p.Self.CoresAvailable = 0.5
		p.Bottleneck = Bottleneck{WsloadBound: c == CauseSaturated, Cause: c, Summary: SummaryOf(c)}
		return p
	}
	for _, c := range []struct {
		parts []string
		want  string
	}{
		{[]string{CauseNone, CauseNone}, CauseNone},
		{[]string{CauseNone, CauseMachineBusy}, CauseMachineBusy},
		{[]string{CauseMachineBusy, CauseSaturated}, CauseSaturated},
		{[]string{"", ""}, CauseNone}, // files from before Cause
	} {
		var ps []*Result
		for _, x := range c.parts {
			ps = append(ps, mk(x))
		}
		m, err := Merge(ps)
		if err != nil {
			t.Fatal(err)
		}
		if m.Bottleneck.Cause != c.want || m.Bottleneck.WsloadBound != (c.want == CauseSaturated) || m.Bottleneck.Summary != SummaryOf(c.want) {
			t.Errorf("%v: %+v, want %q", c.parts, m.Bottleneck, c.want)
		}
		if m.Self.CoresAvailable != 0.5*float64(len(ps)) {
			t.Errorf("cores available %v", m.Self.CoresAvailable)
		}
	}
}

func TestMergeConnectLast(t *testing.T) {
	a := &Result{Schema: Schema, Scenario: "connect", ConnectLastS: 0.8}
	b := &Result{Schema: Schema, Scenario: "connect", ConnectLastS: 1.25}
	c := &Result{Schema: Schema, Scenario: "connect"}
	m, err := Merge([]*Result{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	if m.ConnectLastS != 1.25 {
		t.Fatalf("connect_last_s %v, want the latest worker's 1.25", m.ConnectLastS)
	}
}
