package report

import (
	"fmt"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"wspush/loadgen/result"
)

// PNG draws three charts stacked: the lag percentile spectrum, messages
// per second and lag p50/p99 per second, one line per result.
func PNG(path string, rs []*result.Result, names []string) error {
	spec := plot.New()
	spec.Title.Text = "lag by percentile"
	spec.X.Label.Text = "percentile (log scale of 1/(1−q))"
	spec.Y.Label.Text = "ms"
	spec.X.Tick.Marker = percentileTicks{}
	thr := plot.New()
	thr.Title.Text = "messages per second"
	thr.X.Label.Text = "s"
	lag := plot.New()
	lag.Title.Text = "lag per second (p50 dashed, p99 solid)"
	lag.X.Label.Text = "s"
	lag.Y.Label.Text = "ms"
	for i, r := range rs {
		name := filepath.Base(names[i])
		col := plotutil.Color(i)
		h, err := result.DecodeHist(r.LagHist)
		if err != nil {
			return err
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
				return fmt.Errorf("report: %w", err)
			}
			l.Color = col
			spec.Add(l)
			spec.Legend.Add(name, l)
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
				return fmt.Errorf("report: %w", err)
			}
			l.Color = col
			if x.dash {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			} else {
				x.p.Legend.Add(name, l)
			}
			x.p.Add(l)
		}
	}
	const w, h = 8 * vg.Inch, 12 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 3, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter, PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	plots := [][]*plot.Plot{{spec}, {thr}, {lag}}
	canvases := plot.Align(plots, tiles, dc)
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

// percentileTicks labels log10(1/(1−q)) as 0%, 90%, 99%, 99.9%, …
type percentileTicks struct{}

func (percentileTicks) Ticks(min, max float64) []plot.Tick {
	labels := []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"}
	var t []plot.Tick
	for i, l := range labels {
		if v := float64(i); v >= min-1e-9 && v <= max+1e-9 {
			t = append(t, plot.Tick{Value: v, Label: l})
		}
	}
	return t
}
