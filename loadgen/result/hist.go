package result

import (
	"fmt"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram ranges: values are microseconds from 1 µs to 1 hour, with three
// significant digits (0.1% resolution).
const (
	histLowest  = 1
	histHighest = 3_600_000_000
	histDigits  = 3
)

// Hist is an HdrHistogram of microseconds. Not safe for concurrent use;
// owners guard it (see package scenario).
type Hist struct{ h *hdr.Histogram }

// NewHist returns an empty histogram.
func NewHist() *Hist { return &Hist{hdr.New(histLowest, histHighest, histDigits)} }

// Record adds one value in microseconds; values outside the range are
// clamped so that nothing is silently dropped.
func (h *Hist) Record(us int64) {
	if us < histLowest {
		us = histLowest
	}
	if us > histHighest {
		us = histHighest
	}
	_ = h.h.RecordValue(us)
}

// Merge adds every count of o into h (exact: same bucket layout).
func (h *Hist) Merge(o *Hist) {
	if o != nil {
		h.h.Merge(o.h)
	}
}

// Reset empties h.
func (h *Hist) Reset() { h.h.Reset() }

// Count is the number of recorded values.
func (h *Hist) Count() int64 { return h.h.TotalCount() }

// Quantile returns the value at q (0..100) in microseconds.
func (h *Hist) Quantile(q float64) int64 { return h.h.ValueAtQuantile(q) }

// Encode gives the compressed, base64 HdrHistogram V2 encoding ("" when
// empty), the form result.json and the worker protocol carry.
func (h *Hist) Encode() string {
	if h == nil || h.h.TotalCount() == 0 {
		return ""
	}
	b, err := h.h.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		return ""
	}
	return string(b)
}

// DecodeHist parses Encode's output; "" gives an empty histogram.
func DecodeHist(s string) (*Hist, error) {
	if s == "" {
		return NewHist(), nil
	}
	d, err := hdr.Decode([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("result: bad histogram: %w", err)
	}
	h := NewHist()
	if dropped := h.h.Merge(d); dropped != 0 {
		return nil, fmt.Errorf("result: histogram out of range (%d values)", dropped)
	}
	return h, nil
}

// Percentiles summarises h in milliseconds.
func (h *Hist) Percentiles() Percentiles {
	if h == nil || h.h.TotalCount() == 0 {
		return Percentiles{}
	}
	ms := func(q float64) float64 { return float64(h.h.ValueAtQuantile(q)) / 1000 }
	return Percentiles{
		Count: h.h.TotalCount(),
		P50:   ms(50), P90: ms(90), P99: ms(99), P999: ms(99.9),
		Max:  float64(h.h.Max()) / 1000,
		Mean: h.h.Mean() / 1000,
	}
}

// Spectrum returns (percentile, ms) points for a latency-by-percentile
// chart, from p0 to p99.9999 on a log(1/(1-q)) scale.
func (h *Hist) Spectrum() (qs, ms []float64) {
	if h == nil || h.h.TotalCount() == 0 {
		return nil, nil
	}
	for _, q := range []float64{0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96.25, 97.5, 98.4375, 99, 99.5, 99.75, 99.9, 99.95, 99.99, 99.995, 99.999, 99.9999, 100} {
		qs = append(qs, q)
		ms = append(ms, float64(h.h.ValueAtQuantile(q))/1000)
	}
	return qs, ms
}
