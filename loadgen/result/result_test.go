package result

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	r, err := Parse([]byte(`{"schema":"wsload/v1","scenario":"ticks","conns_target":5,"retries":2,"lag_ms":{"count":3,"p99":1.5}}`))
	if err != nil || r.Scenario != "ticks" || r.ConnsTarget != 5 || r.Retries != 2 || r.LagMS.P99 != 1.5 {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []string{`{"schema":"wsload/v2"}`, `{}`, `[`} {
		if _, err := Parse([]byte(bad)); err == nil || !strings.HasPrefix(err.Error(), "result: ") {
			t.Errorf("%s: error %v", bad, err)
		}
	}
}
