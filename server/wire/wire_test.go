package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEndFrameHeaders(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 1000, 65535, 65536, 70000} {
		payload := bytes.Repeat([]byte{'a'}, n)
		buf := append(BeginFrame(nil), payload...)
		frame := EndFrame(buf, OpText)
		if !bytes.Equal(frame, AppendFrame(nil, OpText, payload)) {
			t.Fatalf("%d bytes: EndFrame and AppendFrame differ", n)
		}
		if frame[0] != 0x81 {
			t.Fatalf("%d bytes: first byte %#x", n, frame[0])
		}
		var got, hl int
		switch l := frame[1]; {
		case l < 126:
			got, hl = int(l), 2
		case l == 126:
			got, hl = int(binary.BigEndian.Uint16(frame[2:])), 4
		default:
			got, hl = int(binary.BigEndian.Uint64(frame[2:])), 10
		}
		if got != n || len(frame) != hl+n {
			t.Fatalf("%d bytes: header says %d, frame is %d long", n, got, len(frame))
		}
	}
}

func TestCloseFrame(t *testing.T) {
	f := AppendCloseFrame(nil, CloseSlowConsumer, strings.Repeat("r", 200))
	if f[0] != 0x88 || int(f[1]) != len(f)-2 || len(f)-2 > 125 || binary.BigEndian.Uint16(f[2:]) != 4008 {
		t.Fatalf("close frame % x", f[:4])
	}
}

func TestEncodersProduceValidJSON(t *testing.T) {
	tick := AppendTickOpen(nil, 3, 4, "")
	tick = append(tick, `,"topics":{`...)
	tick = AppendLatestEntry(tick, "a", 1, []byte(`{"x":1}`))
	tick = append(tick, ',')
	tick = AppendLatestEntry(tick, "b/c", 9, []byte(`[1]`))
	tick = append(tick, "}}"...)
	for _, b := range [][]byte{
		tick,
		AppendMsg(nil, "prices/EURUSD", 7, 8, []byte(`{"bid":1.1}`)),
		AppendSubscribed(nil, "t", ModeStream, 5, "e1", true, []byte(`"s1"`)),
		AppendSubscribed(nil, "t", ModeLatest, 0, "e1", false, nil),
		AppendUnsubscribed(nil, "t", nil),
		AppendPublished(nil, "t", 3, []byte("1")),
		AppendWelcome(nil, "c1", 5000, 1_700_000_000_000_000_000, "Welcome to the server!"),
		AppendWelcome(nil, "c1", 0, 0, "ticks off"),
		AppendTick(nil, 1, 1_700_000_000_000_000_000, ""),
		AppendTick(nil, 2, -5, "with \"text\" <b>\n"),
		AppendPong(nil, []byte(`"abc"`)),
		AppendError(nil, CodeBadRequest, "bad \x01 \xff", []byte("7")),
		AppendError(nil, CodeBadRequest, "no id", nil),
	} {
		if !json.Valid(b) {
			t.Fatalf("invalid JSON: %s", b)
		}
	}
	var m ServerMsg
	if err := ParseServer(AppendWelcome(nil, "c1", 5000, 1_700_000_000_123_456_789, "hi"), &m); err != nil || m.Type != TypeWelcome ||
		string(m.ID) != `"c1"` || m.IntervalMS != 5000 || m.FirstDue != 1_700_000_000_123_456_789 || m.Text != "hi" {
		t.Fatalf("welcome %+v %v", m, err)
	}
	if got := string(AppendWelcome(nil, "c1", 0, 0, "x")); got != `{"type":"welcome","id":"c1","interval_ms":0,"text":"x"}` {
		t.Fatalf("welcome with ticks off: %s, want no first_due", got)
	}
}

func TestParseServerTickFastPathAgreesWithJSON(t *testing.T) {
	for _, c := range []struct {
		seq uint64
		due int64
	}{{1, 1}, {0, 0}, {1 << 63, -1 << 63}, {12345, 1_795_000_000_000_000_000}, {^uint64(0), 1<<63 - 1}} {
		b := AppendTick(nil, c.seq, c.due, "")
		var fast, slow ServerMsg
		if err := ParseServer(b, &fast); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatal(err)
		}
		if fast.Type != slow.Type || fast.Seq != slow.Seq || fast.Due != slow.Due || fast.Seq != c.seq || fast.Due != c.due {
			t.Fatalf("%s: fast %+v, json %+v", b, fast, slow)
		}
	}
	tick := []byte(`{"type":"tick","seq":42,"due":1795000000000000000}`)
	var m ServerMsg
	if allocs := testing.AllocsPerRun(100, func() { _ = ParseServer(tick, &m) }); allocs != 0 {
		t.Fatalf("tick fast path allocates %v times", allocs)
	}
}

func TestParseClient(t *testing.T) {
	m, err := ParseClient([]byte(` {"type":"ping","id":"a1","extra":true} `))
	if err != nil || m.Type != TypePing || string(m.ID) != `"a1"` {
		t.Fatalf("ping: %+v %v", m, err)
	}
	if m, err := ParseClient([]byte(`{"type":"ping","id":"<b>\u0041"}`)); err != nil || string(m.ID) != `"\u003cb\u003eA"` {
		t.Fatalf("string ids are re-escaped: %s %v", m.ID, err)
	}
	if m, err := ParseClient([]byte(`{"type":"ping","id":-3.5}`)); err != nil || string(m.ID) != "-3.5" {
		t.Fatalf("numeric id: %+v %v", m, err)
	}
	for in, want := range map[string]string{
		``:                          "JSON object",
		`null`:                      "JSON object",
		`{"type":"ping","id":1`:     "malformed",
		`{"type":"ping","id":true}`: "string or a number",
		`{"type":"ping","id":"` + strings.Repeat("x", 200) + `"}`: "longer than",
		`{"type":"ping","id":null}`:                               `missing field "id"`,
		`{"type":["x"]}`:                                          `"type" has the wrong type`,
		`{"type":"pub"}`:                                          `missing field "topic"`,
		`{"type":"pub","topic":"a"}`:                              `missing field "data"`,
		`{"type":"sub","topic":""}`:                               "must not be empty",
		`{"type":"sub","topic":"a b"}`:                            "character outside",
		`{"type":"sub","topic":"a","mode":"fast"}`:                "mode must be",
		`{"type":"sub","topic":"a","since":3}`:                    `needs the "epoch"`,
		`{"type":"sub","topic":"a","since":-1,"epoch":"e"}`:       `"since" has the wrong type`,
	} {
		_, err := ParseClient([]byte(in))
		var pe *ProtocolError
		if !errors.As(err, &pe) || !strings.Contains(pe.Reason, want) {
			t.Errorf("%q: %v, want a protocol error mentioning %q", in, err, want)
		}
	}
}

func FuzzParseClient(f *testing.F) {
	for _, s := range []string{`{"type":"ping","id":1}`, `{"type":"sub","topic":"a"}`, `[]`, `{"type":`, `{"id":"x"}`, "\xff",
		`{"type":"rpc","id":1,"method":"m","data":{"a":[1]}}`, `{"type":"rpc","method":""}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseClient(b)
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code == "" || pe.Reason == "" {
				t.Fatalf("error %v is not a protocol error", err)
			}
			return
		}
		if len(m.ID) > MaxIDBytes {
			t.Fatalf("accepted a long id: %+v", m)
		}
		switch m.Type {
		case TypePing:
			if m.ID == nil {
				t.Fatalf("accepted a ping without id: %+v", m)
			}
		case TypeSub, TypeUnsub, TypePub:
			if ValidTopic(m.Topic) != nil {
				t.Fatalf("accepted topic %q", m.Topic)
			}
			if m.Type == TypeSub && m.Mode != ModeStream && m.Mode != ModeLatest {
				t.Fatalf("accepted mode %q", m.Mode)
			}
			if m.Type == TypePub && !json.Valid(m.Data) {
				t.Fatalf("accepted data %q", m.Data)
			}
		case TypeRPC:
			if m.Method == "" || len(m.Method) > MaxMethodBytes || m.Data != nil && !json.Valid(m.Data) {
				t.Fatalf("accepted rpc %+v", m)
			}
			data := m.Data
			if data == nil {
				data = []byte("null")
			}
			if reply := AppendRPCResult(nil, data, m.ID); !json.Valid(reply) {
				t.Fatalf("rpc_result %s is not JSON", reply)
			}
		default:
			t.Fatalf("accepted %+v", m)
		}
		// What is accepted can be echoed: the reply is valid JSON.
		if reply := AppendUnsubscribed(nil, m.Topic, m.ID); !json.Valid(reply) {
			t.Fatalf("reply %s is not JSON", reply)
		}
	})
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" back\\slash", "\x00\x1f\u2028<>&", "\xff\xfe", "日本語"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q encoded as %s: %v", s, b, err)
		}
		if want := strings.ToValidUTF8(s, "\ufffd"); back != want && utf8.ValidString(s) {
			t.Fatalf("%q came back as %q", s, back)
		}
	})
}

func FuzzParseServer(f *testing.F) {
	f.Add([]byte(`{"type":"tick","seq":1,"due":2}`))
	f.Add([]byte(`{"type":"tick","seq":18446744073709551615,"due":-9223372036854775808}`))
	f.Add([]byte(`{"type":"welcome","id":"c1","interval_ms":5000,"text":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m ServerMsg
		if err := ParseServer(b, &m); err == nil && m.Type == "" {
			t.Fatalf("%q accepted without a type", b)
		}
	})
}

func TestMsgOverheadIsTheMost(t *testing.T) {
	for _, seq := range []uint64{0, 1, math.MaxUint64} {
		for _, ts := range []int64{0, math.MaxInt64, math.MinInt64} {
			b := AppendMsg(nil, "t", seq, ts, []byte("1"))
			if extra := len(b) - 2; extra > MsgOverhead {
				t.Fatalf("seq %d ts %d: AppendMsg added %d bytes, over MsgOverhead %d", seq, ts, extra, MsgOverhead)
			}
		}
	}
}
