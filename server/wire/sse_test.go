package wire

import (
	"strings"
	"testing"
)

func TestAppendEvent(t *testing.T) {
	got := string(AppendEvent(nil, "msg", []byte("{\"a\":\r\n1,\r\"b\":\n2}")))
	want := "event: msg\ndata: {\"a\":\ndata: 1,\ndata: \"b\":\ndata: 2}\n\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if typ := EventType([]byte(`{"type":"tick","seq":1}`)); typ != TypeTick {
		t.Errorf("type %q", typ)
	}
	if typ := EventType([]byte(`{"seq":1}`)); typ != "message" {
		t.Errorf("type %q", typ)
	}
	if n := testing.AllocsPerRun(100, func() { _ = EventType([]byte(`{"type":"msg"}`)) }); n != 0 {
		t.Errorf("EventType allocates %v", n)
	}
}

func TestParseEventID(t *testing.T) {
	id := string(AppendPosition(append(AppendPosition(nil, "a:b/c", "9bff652b571c1d51", 7), ','), "x", "e", 0))
	ps, err := ParseEventID(id)
	if err != nil || len(ps) != 2 || ps[0] != (Position{"a:b/c", "9bff652b571c1d51", 7}) || ps[1] != (Position{"x", "e", 0}) {
		t.Fatalf("%q: %+v, %v", id, ps, err)
	}
	for _, bad := range []string{"garbage", "a:1", "a::1", "a:e:x", ":e:1", "a b:e:1", "a:" + strings.Repeat("e", 65) + ":1", "a:e:1,"} {
		if _, err := ParseEventID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
