package report

import (
	"bytes"
	"image/png"
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

// TestPNGLayout renders a chart whose spectrum reaches 99.9999 % and whose
// header lines are long, and checks that nothing is drawn on the image's
// left and right borders: the last percentile label and the run parameters
// are inside the canvas, not clipped at its edge.
func TestPNGLayout(t *testing.T) {
	h := result.NewHist()
	for i := int64(1); i <= 2_000_000; i++ {
		h.Record(1000 + i%5000)
	}
	h.Record(900_000)
	r := sample()
	r.LagHist, r.LagMS = h.Encode(), h.Percentiles()
	r.Scenario, r.ConnsTarget, r.DurationS = "churn", 1_000_000, 421.7
	r.Params = result.Params{URL: "ws://127.0.0.1:9000-9059/ws", Rate: 4000, DurationS: 420, Topics: 10, PubRate: 0.05, ChurnRate: 200, Procs: 52, Sources: 59}
	dir := t.TempDir()
	in := filepath.Join(dir, "2026-11-25T2204-cluster-broadcast-with-a-long-name.json")
	if err := result.Save(in, r); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "r.png")
	if err := PNG(path, []*result.Result{r, r}, []string{in, in}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	const border = 3 // px
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for _, x := range []int{b.Min.X, b.Min.X + border - 1, b.Max.X - border, b.Max.X - 1} {
			if r, g, bl, _ := img.At(x, y).RGBA(); r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				t.Fatalf("ink at the image's edge, (%d,%d) of %v: something is clipped", x, y, b)
			}
		}
	}
}

// TestHeader: the chart's title names the scenario and each result's
// line carries the run parameters.
func TestHeader(t *testing.T) {
	r := sample()
	r.Scenario, r.ConnsTarget, r.DurationS = "publish", 19000, 31.2
	r.Params = result.Params{URL: "ws://127.0.0.1:8080/ws", Rate: 3000, DurationS: 30, Topics: 10, PubRate: 50, Procs: 1}
	title, lines := Header([]*result.Result{r, sample()}, []string{"/x/pub.json", "ticks.json"})
	if title != "wsload publish, ticks: lag and throughput" {
		t.Errorf("title %q", title)
	}
	if len(lines) != 2 || lines[0][0] != "pub.json" || lines[1][0] != "ticks.json" {
		t.Fatalf("lines %q", lines)
	}
	want := "publish, 19000 conns at 3000/s, duration 30 s (ran 31.2 s), target ws://127.0.0.1:8080/ws, topics 10, pub-rate 50/s, procs 1, sources 0"
	if lines[0][1] != want {
		t.Errorf("params\n %q\nwant\n %q", lines[0][1], want)
	}
}
