package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"wspush/loadgen/result"
)

func sample() *result.Result {
	h := result.NewHist()
	for i := int64(1); i <= 100; i++ {
		h.Record(i * 1000)
	}
	return &result.Result{Schema: result.Schema, Scenario: "ticks", ConnsTarget: 5, ConnsEstablished: 5,
		Messages: 100, Gaps: 3, Errors: map[string]int64{"refused": 2}, Retries: 7, LagHist: h.Encode(), LagMS: h.Percentiles(),
		Params:     result.Params{Retries: 3, RetryBackoffS: 0.5},
		Series:     []result.Second{{T: 1, Msgs: 50, LagP50: 1, LagP99: 2}, {T: 2, Msgs: 50, LagP50: 1, LagP99: 3}},
		Bottleneck: result.Bottleneck{Summary: result.Summary(false)}}
}

func TestRender(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "r.json")
	if err := result.Save(in, sample()); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := Main([]string{in}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"gaps 3", "refused 2", "p50 50.02", "target 5", "connect retries            7 (-retries 3, backoff 0.5s)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := Main([]string{"-format", "md", in}, &out, &errb); err != nil || !strings.Contains(out.String(), "| 2 | 0 | 0 | 50 |") {
		t.Fatalf("md: %v\n%s", err, out.String())
	}
	png := filepath.Join(dir, "r.png")
	if err := Main([]string{"-format", "png", "-o", png, in, in}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("png not written: %v", err)
	}
	if err := Main([]string{"-format", "nope", in}, &out, &errb); err == nil {
		t.Fatal("unknown format accepted")
	}
}
