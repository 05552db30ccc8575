package wire

import (
	"strings"
	"testing"
)

func TestParseClientRPC(t *testing.T) {
	m, err := ParseClient([]byte(`{"type":"rpc","id":7,"method":"cart.add","data":{"sku":"x1","n":2}}`))
	if err != nil || m.Type != TypeRPC || string(m.ID) != "7" || m.Method != "cart.add" || string(m.Data) != `{"sku":"x1","n":2}` {
		t.Fatalf("rpc: %+v %v", m, err)
	}
	if m, err := ParseClient([]byte(`{"type":"rpc","method":"now"}`)); err != nil || m.Data != nil || m.ID != nil {
		t.Fatalf("rpc without data and id: %+v %v", m, err)
	}
	if m, err := ParseClient([]byte(`{"type":"rpc","method":"now","data":null}`)); err != nil || m.Data != nil {
		t.Fatalf("rpc with null data: %+v %v", m, err)
	}
	for in, want := range map[string]string{
		`{"type":"rpc"}`:             `missing field "method"`,
		`{"type":"rpc","method":""}`: `missing field "method"`,
		`{"type":"rpc","method":5}`:  `wrong type`,
		`{"type":"rpc","method":"` + strings.Repeat("m", MaxMethodBytes+1) + `"}`: "longer than",
		`{"type":"rpc","method":"x","id":{}}`:                                     `"id" must be`,
	} {
		_, err := ParseClient([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", in, err, want)
		}
	}
}

func TestRPCResultAndSubscribedData(t *testing.T) {
	var m ServerMsg
	if err := ParseServer(AppendRPCResult(nil, []byte(`{"ok":true}`), []byte(`"r1"`)), &m); err != nil ||
		m.Type != TypeRPCResult || string(m.ID) != `"r1"` || string(m.Data) != `{"ok":true}` {
		t.Fatalf("rpc_result: %+v %v", m, err)
	}
	b := AppendSubscribedData(nil, "t", ModeStream, 3, "e", false, []byte(`[1,2]`), []byte("4"))
	if err := ParseServer(b, &m); err != nil || m.Type != TypeSubscribed || string(m.Data) != `[1,2]` || string(m.ID) != "4" || m.Seq != 3 {
		t.Fatalf("subscribed with data: %s %+v %v", b, m, err)
	}
	if got, want := string(AppendSubscribedData(nil, "t", ModeLatest, 0, "e", false, nil, nil)), string(AppendSubscribed(nil, "t", ModeLatest, 0, "e", false, nil)); got != want {
		t.Fatalf("no data: %s, want %s", got, want)
	}
}
