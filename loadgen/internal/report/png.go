package report

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"wspush/loadgen/result"
)

// Sizes of the PNG: the three charts take chartsH below a header whose
// height depends on the number of results.
const (
	pngW, chartsH = 8 * vg.Inch, 12 * vg.Inch
	margin        = 4 * vg.Millimeter
	swatchW       = 10 * vg.Millimeter
)

// percentileLabels label log10(1/(1−q)) = 0, 1, 2, … of the spectrum.
var percentileLabels = []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"}

// PNG draws a header (title; per result its colour, file name and run
// parameters — the legend of every chart) over three charts stacked: the
// lag percentile spectrum, messages per second and lag p50/p99 per second,
// one line per result in that result's colour. No legend is drawn inside
// a chart, so none hides a line.
func PNG(path string, rs []*result.Result, names []string) error {
	spec, thr, lag, err := charts(rs)
	if err != nil {
		return err
	}
	title, lines := Header(rs, names)
	titleSty, nameSty, paramSty := textStyle(16, color.Black), textStyle(11, color.Black), textStyle(10, color.Gray{Y: 0x50})
	lineH := func(s draw.TextStyle) vg.Length { return s.Font.Size * 1.35 }
	x0 := margin + swatchW + 2*vg.Millimeter // left edge of the header's text
	params := make([][]string, len(lines))
	headerH := margin + lineH(titleSty) + margin
	for i, l := range lines {
		params[i] = wrap(paramSty, l[1], pngW-x0-margin)
		headerH += lineH(nameSty) + vg.Length(len(params[i]))*lineH(paramSty)
	}

	img := vgimg.New(pngW, chartsH+headerH)
	dc := draw.New(img)
	// header, from the top down
	y := dc.Max.Y - margin - titleSty.Font.Size
	titleSty.XAlign = draw.XCenter
	dc.FillText(titleSty, vg.Point{X: (dc.Min.X + dc.Max.X) / 2, Y: y}, title)
	y -= lineH(titleSty) - titleSty.Font.Size
	for i, l := range lines {
		y -= lineH(nameSty)
		mid := y + nameSty.Font.Size*0.35
		dc.StrokeLine2(draw.LineStyle{Color: plotutil.Color(i), Width: vg.Points(2.5)}, dc.Min.X+margin, mid, dc.Min.X+margin+swatchW, mid)
		dc.FillText(nameSty, vg.Point{X: dc.Min.X + x0, Y: y}, l[0])
		for _, p := range params[i] {
			y -= lineH(paramSty)
			dc.FillText(paramSty, vg.Point{X: dc.Min.X + x0, Y: y}, p)
		}
	}

	// The last percentile label is centred on the right end of the axis:
	// leave half the widest label free on the right so it is not clipped.
	right := spec.X.Tick.Label.Width(percentileLabels[len(percentileLabels)-1])/2 + 2*vg.Millimeter
	tiles := draw.Tiles{Rows: 3, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter, PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: right}
	plots := [][]*plot.Plot{{spec}, {thr}, {lag}}
	canvases := plot.Align(plots, tiles, draw.Crop(dc, 0, 0, 0, -headerH))
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("report: %w", err)
	}
	return f.Close()
}

// charts builds the three charts, one line per result in plotutil.Color(i).
func charts(rs []*result.Result) (spec, thr, lag *plot.Plot, err error) {
	spec = plot.New()
	spec.Title.Text = "lag by percentile"
	spec.X.Label.Text = "percentile (log scale of 1/(1−q))"
	spec.Y.Label.Text = "ms"
	spec.X.Tick.Marker = percentileTicks{}
	thr = plot.New()
	thr.Title.Text = "messages per second"
	thr.X.Label.Text = "s"
	lag = plot.New()
	lag.Title.Text = "lag per second (p50 dashed, p99 solid)"
	lag.X.Label.Text = "s"
	lag.Y.Label.Text = "ms"
	for i, r := range rs {
		col := plotutil.Color(i)
		h, err := result.DecodeHist(r.LagHist)
		if err != nil {
			return nil, nil, nil, err
		}
		qs, ms := h.Spectrum()
		var pts plotter.XYs
		for j := range qs {
			if qs[j] >= 100 {
				continue
			}
			pts = append(pts, plotter.XY{X: math.Log10(1 / (1 - qs[j]/100)), Y: ms[j]})
		}
		if len(pts) > 0 {
			l, err := plotter.NewLine(pts)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("report: %w", err)
			}
			l.Color = col
			spec.Add(l)
		}
		var tp, p50, p99 plotter.XYs
		for _, s := range r.Series {
			tp = append(tp, plotter.XY{X: float64(s.T), Y: float64(s.Msgs)})
			p50 = append(p50, plotter.XY{X: float64(s.T), Y: s.LagP50})
			p99 = append(p99, plotter.XY{X: float64(s.T), Y: s.LagP99})
		}
		if len(tp) == 0 {
			continue
		}
		for _, x := range []struct {
			p    *plot.Plot
			pts  plotter.XYs
			dash bool
		}{{thr, tp, false}, {lag, p50, true}, {lag, p99, false}} {
			l, err := plotter.NewLine(x.pts)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("report: %w", err)
			}
			l.Color = col
			if x.dash {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			}
			x.p.Add(l)
		}
	}
	return spec, thr, lag, nil
}

// Header is the PNG's title and, per result, its file name and a line of
// run parameters: scenario, connections, connect rate, duration, target
// and the scenario's own knobs.
func Header(rs []*result.Result, names []string) (title string, lines [][2]string) {
	var scen []string
	for i, r := range rs {
		if !slices.Contains(scen, r.Scenario) {
			scen = append(scen, r.Scenario)
		}
		lines = append(lines, [2]string{filepath.Base(names[i]), runParams(r)})
	}
	return "wsload " + strings.Join(scen, ", ") + ": lag and throughput", lines
}

func runParams(r *result.Result) string {
	p := r.Params
	s := fmt.Sprintf("%s, %d conns at %g/s, duration %g s (ran %.1f s), target %s", r.Scenario, r.ConnsTarget, p.Rate, p.DurationS, r.DurationS, p.URL)
	switch r.Scenario {
	case "publish", "churn":
		s += fmt.Sprintf(", topics %d, pub-rate %g/s", p.Topics, p.PubRate)
		if r.Scenario == "churn" {
			s += fmt.Sprintf(", churn-rate %g/s", p.ChurnRate)
		}
	case "echo":
		s += fmt.Sprintf(", ping-rate %g/s", p.PingRate)
	}
	return s + fmt.Sprintf(", procs %d, sources %d", max(p.Procs, 1), p.Sources)
}

// wrap breaks txt after commas into lines no wider than w (a single part
// wider than w stays whole).
func wrap(sty draw.TextStyle, txt string, w vg.Length) []string {
	var out []string
	line := ""
	for _, part := range strings.SplitAfter(txt, ", ") {
		if line != "" && sty.Width(strings.TrimRight(line+part, ", ")) > w {
			out = append(out, strings.TrimRight(line, ", "))
			line = ""
		}
		line += part
	}
	return append(out, strings.TrimRight(line, ", "))
}

func textStyle(size float64, c color.Color) draw.TextStyle {
	sty := plot.New().Title.TextStyle
	sty.Font.Size = font.Length(size)
	sty.Color = c
	sty.XAlign, sty.YAlign = draw.XLeft, draw.YBottom
	return sty
}

// percentileTicks labels log10(1/(1−q)) as 0%, 90%, 99%, 99.9%, …
type percentileTicks struct{}

func (percentileTicks) Ticks(min, max float64) []plot.Tick {
	var t []plot.Tick
	for i, l := range percentileLabels {
		if v := float64(i); v >= min-1e-9 && v <= max+1e-9 {
			t = append(t, plot.Tick{Value: v, Label: l})
		}
	}
	return t
}
