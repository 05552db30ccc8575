package wsload

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"wspush/loadgen/result"
)

// realFile is a wsload/v1 result.json kept in bench/results: the 1M
// publish of 2026-11-25 22:04 (52 workers merged), written by wsload
// itself. Decoding it through the shared types is what keeps wsbench and
// wsload on one schema: a renamed, retyped or dropped field fails here.
const realFile = "../../results/2026-11-25T2204-cluster-broadcast.json"

func TestLoadRealFile(t *testing.T) {
	out, err := Load(realFile)
	if err != nil {
		t.Fatal(err)
	}
	r := out.Result
	if r.Schema != result.Schema || r.Scenario != "publish" || r.Params.Procs != 52 || r.Params.Topics != 1 || r.Params.DurationS != 400 {
		t.Errorf("header: schema %q scenario %q params %+v", r.Schema, r.Scenario, r.Params)
	}
	if r.ConnsTarget != 1_000_000 || r.ConnsEstablished != 999_991 || r.ConnsPeak != 738_586 || r.ConnsFinal != 276_636 {
		t.Errorf("conns: target %d established %d peak %d final %d", r.ConnsTarget, r.ConnsEstablished, r.ConnsPeak, r.ConnsFinal)
	}
	if r.Sent != 2 || r.Messages != 276_730 || r.Expected != 276_730 || r.Lost != 0 || r.Gaps != 0 {
		t.Errorf("deliveries: sent %d messages %d expected %d lost %d gaps %d", r.Sent, r.Messages, r.Expected, r.Lost, r.Gaps)
	}
	if r.Errors["history_gone"] != 276_654 || r.Errors["timeout"] != 9 || r.Disconnects["other"] != 718_358 {
		t.Errorf("classes: errors %v disconnects %v", r.Errors, r.Disconnects)
	}
	if r.LagMS.Count != 276_730 || r.LagMS.P99 != 9584.639 || r.ConnectMS.Count != 999_991 || r.ConnectMS.Max != 9535.487 {
		t.Errorf("percentiles: lag %+v connect %+v", r.LagMS, r.ConnectMS)
	}
	if len(r.TopicStats) != 1 || r.TopicStats[0].Subs != 999_991 || r.TopicStats[0].LastPub != 1 {
		t.Errorf("topic stats %+v", r.TopicStats)
	}
	if r.Self.RSSPeakBytes != 1_896_484_864 || r.Self.CPUAvgCores <= 0 || !r.Bottleneck.WsloadBound || !strings.HasPrefix(r.Bottleneck.Summary, "wsload was the bottleneck") {
		t.Errorf("self %+v bottleneck %v %q", r.Self, r.Bottleneck.WsloadBound, r.Bottleneck.Summary)
	}
	// the whole-run histogram is the one behind lag_ms
	h, err := result.DecodeHist(r.LagHist)
	if err != nil || h.Percentiles() != r.LagMS {
		t.Errorf("lag_hist %v: %+v, lag_ms %+v", err, h.Percentiles(), r.LagMS)
	}
	if len(r.Series) != 400 || r.Series[399].T != 400 {
		t.Fatalf("series: %d seconds", len(r.Series))
	}
	// every delivery is in the per-second series, with its histograms
	st, err := SteadyState(r, 1)
	if err != nil || st.Msgs != r.Messages || !st.HistMerged || st.LagMaxMS != r.LagMS.Max {
		t.Errorf("steady over the whole run: %+v %v", st, err)
	}
	raw, err := os.ReadFile(realFile)
	if err != nil || !bytes.Equal(out.Raw, raw) {
		t.Errorf("Raw is not the file as written (%v)", err)
	}
}

// TestRealFileSchemaExact: the shared types know every field of a file
// wsload wrote, and give each one back unchanged.
func TestRealFileSchemaExact(t *testing.T) {
	raw, err := os.ReadFile(realFile)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var r result.Result
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("%s has a field the shared schema lacks: %v", filepath.Base(realFile), err)
	}
	back, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	var in, again map[string]any
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(back, &again); err != nil {
		t.Fatal(err)
	}
	for k, v := range in {
		if !reflect.DeepEqual(v, again[k]) {
			t.Errorf("field %q does not survive decode and encode", k)
		}
	}
}

func TestLoadRejectsOtherSchema(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.json")
	if err := os.WriteFile(p, []byte(`{"schema":"wsload/v2","scenario":"ticks"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil {
		t.Fatal("loaded a wsload/v2 file")
	}
}
