package wsload

import (
	"testing"

	"wspush/loadgen/result"
)

// enc is a per-second lag histogram as wsload writes it (µs values).
func enc(us ...int64) string {
	h := result.NewHist()
	for _, v := range us {
		h.Record(v)
	}
	return h.Encode()
}

func TestSteadyState(t *testing.T) {
	var many []int64
	for i := 0; i < 99; i++ {
		many = append(many, 1000) // 1 ms
	}
	r := &result.Result{Series: []result.Second{
		{T: 1, Conns: 10, Msgs: 5, LagHist: enc(900_000)}, // ramp: excluded
		{T: 2, Conns: 100, Msgs: 99, LagHist: enc(many...)},
		{T: 3, Conns: 100, Msgs: 0},                                // stalled second
		{T: 4, Conns: 99, Msgs: 1, Gaps: 2, LagHist: enc(250_000)}, // one late message
	}}
	st, err := SteadyState(r, 2)
	if err != nil {
		t.Fatal(err)
	}
	if st.Msgs != 100 || st.WindowS != 3 || st.Gaps != 2 || st.MinConns != 99 || st.ToT != 4 {
		t.Fatalf("%+v", st)
	}
	if st.LagP50MS < 0.99 || st.LagP50MS > 1.01 || st.LagMaxMS < 249 || st.LagMaxMS > 251 {
		t.Fatalf("p50 %v max %v", st.LagP50MS, st.LagMaxMS)
	}
	if _, err := SteadyState(r, 10); err == nil {
		t.Fatal("empty window: no error")
	}
}
