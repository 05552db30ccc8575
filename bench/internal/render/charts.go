package render

import (
	"encoding/json"
	"fmt"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"wspush/bench/internal/scenario"
	"wspush/loadgen/result"
)

// Charts writes the bench-*.png charts for the latest files into dir and
// returns the paths written.
func Charts(dir string, files []*scenario.File) ([]string, error) {
	latest := Latest(files)
	var out []string
	bar := func(name, title, ylabel string, f *scenario.File, val func(target string) float64) error {
		var vals plotter.Values
		var labels []string
		for _, t := range f.Targets {
			vals = append(vals, val(t))
			labels = append(labels, t)
		}
		p := plot.New()
		p.Title.Text = title
		p.Y.Label.Text = ylabel
		bc, err := plotter.NewBarChart(vals, vg.Points(36))
		if err != nil {
			return fmt.Errorf("wsbench: chart %s: %w", name, err)
		}
		bc.Color = color.RGBA{R: 70, G: 110, B: 170, A: 255}
		bc.LineStyle.Width = 0
		p.Add(bc)
		p.NominalX(labels...)
		top := 0.0
		for _, v := range vals {
			top = max(top, v)
		}
		p.Y.Min, p.Y.Max = 0, top*1.15+1
		path := filepath.Join(dir, name)
		if err := p.Save(6*vg.Inch, 3.5*vg.Inch, path); err != nil {
			return fmt.Errorf("wsbench: chart %s: %w", name, err)
		}
		out = append(out, path)
		return nil
	}
	if f := latest["fixed"]; f != nil && len(f.Fixed) > 0 {
		top := 0.0
		for _, r := range f.Fixed {
			top = max(top, r.OfferedRate)
		}
		m := map[string]float64{}
		for _, r := range f.Fixed {
			if r.OfferedRate == top {
				m[r.Target] = r.CPUPerPush // 0 when no round was clean (load-bound)
			}
		}
		if err := bar("bench-fixed.png", fmt.Sprintf("Server CPU per push at %.0f pushes/s offered (%d connections; 0 = no clean round)", top, f.Fixed[0].Conns), "µs per push", f, func(t string) float64 { return m[t] }); err != nil {
			return out, err
		}
	}
	if f := latest["ticks"]; f != nil {
		m := map[string]float64{}
		for _, t := range f.Ticks {
			m[t.Target] = t.BestRate
		}
		if err := bar("bench-ticks.png", fmt.Sprintf("Sustained pushes/s at %d connections (lag p99 ≤ 100 ms, no gaps)", f.Conns), "pushes/s", f, func(t string) float64 { return m[t] }); err != nil {
			return out, err
		}
	}
	if f := latest["idle"]; f != nil {
		m := map[string][]float64{}
		for _, r := range f.Idle {
			if r.Err == "" {
				m[r.Target] = append(m[r.Target], r.RSSPerConn)
			}
		}
		if err := bar("bench-idle.png", "Idle server RSS per connection", "bytes", f, func(t string) float64 { return median(m[t]) }); err != nil {
			return out, err
		}
	}
	if f := latest["broadcast"]; f != nil {
		m := map[string][]float64{}
		for _, r := range f.Broadcast {
			if r.Result != nil {
				m[r.Target] = append(m[r.Target], r.Result.All.P99)
			}
		}
		if err := bar("bench-broadcast.png", fmt.Sprintf("Broadcast to %d clients: p99 arrival", f.Conns), "ms", f, func(t string) float64 { return median(m[t]) }); err != nil {
			return out, err
		}
	}
	if f := latest["connect"]; f != nil {
		m := map[string][]float64{}
		title := fmt.Sprintf("Handshakes in the busiest second (%d connections, 10k/s offered)", f.Conns)
		for _, r := range f.Connect {
			switch {
			case r.Err != "":
			case r.SpanS > 0:
				m[r.Target] = append(m[r.Target], r.PerSec)
				title = fmt.Sprintf("Handshakes/s to %d connections (%d/s offered)", f.Conns, r.Offered)
			default:
				m[r.Target] = append(m[r.Target], float64(r.PeakPerSec))
			}
		}
		if err := bar("bench-connect.png", title, "handshakes/s", f, func(t string) float64 { return median(m[t]) }); err != nil {
			return out, err
		}
	}
	if f := latest["onemillion"]; f != nil && f.OneMillion != nil && len(f.OneMillion.Wsload) > 0 {
		path := filepath.Join(dir, "bench-1m.png")
		if err := oneMillionChart(path, f.OneMillion.Wsload); err != nil {
			return out, err
		}
		out = append(out, path)
	}
	return out, nil
}

// oneMillionChart plots open connections (thousands) and messages/s
// (thousands) per second of the wsload series.
func oneMillionChart(path string, raw json.RawMessage) error {
	r, err := result.Parse(raw)
	if err != nil {
		return fmt.Errorf("wsbench: 1M chart: %w", err)
	}
	conns, msgs := make(plotter.XYs, len(r.Series)), make(plotter.XYs, len(r.Series))
	for i, s := range r.Series {
		conns[i] = plotter.XY{X: float64(s.T), Y: float64(s.Conns) / 1000}
		msgs[i] = plotter.XY{X: float64(s.T), Y: float64(s.Msgs) / 1000}
	}
	p := plot.New()
	p.Title.Text = "1M run, wsload per-second series (k): starved workers report late, see notes"
	p.X.Label.Text = "s"
	p.Legend.Top = true
	lc, err := plotter.NewLine(conns)
	if err != nil {
		return fmt.Errorf("wsbench: 1M chart: %w", err)
	}
	lm, err := plotter.NewLine(msgs)
	if err != nil {
		return fmt.Errorf("wsbench: 1M chart: %w", err)
	}
	lm.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
	p.Add(lc, lm)
	p.Legend.Add("connections (k)", lc)
	p.Legend.Add("ticks/s (k)", lm)
	if err := p.Save(7*vg.Inch, 3.5*vg.Inch, path); err != nil {
		return fmt.Errorf("wsbench: 1M chart: %w", err)
	}
	return nil
}
