package pubapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"wspush/server/internal/bus"
	"wspush/server/wire"
)

// recorder is the bus's local side: it records what was delivered.
type recorder struct{ delivered, broadcast int }

func (r *recorder) Deliver(*bus.Message)   { r.delivered++ }
func (r *recorder) Broadcast(*bus.Message) { r.broadcast++ }
func (r *recorder) Overloaded() bool       { return false }

func (r *recorder) Subscribe(*bus.Topic, bus.Subscription, bus.Start) error { return nil }
func (r *recorder) Unsubscribe(*bus.Topic, bus.Subscription) bool           { return false }

var fuzzPaths = []string{"/v1/publish", "/v1/publish/batch", "/v1/broadcast"}

// FuzzPublishBody posts arbitrary bodies to the real handlers over a real
// bus and checks the API's promises: a 200 publishes exactly what its
// answer says, each value valid JSON on a valid topic within the cap; any
// other status publishes nothing; every answer is a JSON object.
func FuzzPublishBody(f *testing.F) {
	f.Add(uint8(0), "application/json", []byte(`{"topic":"a","data":{"x":1}}`))
	f.Add(uint8(0), "", []byte(`{"topic":"a b","data":1}`))
	f.Add(uint8(0), "text/plain", []byte(`{"topic":"a","data":1}`))
	f.Add(uint8(0), "", []byte(`{"topic":"a","data":1} {}`))
	f.Add(uint8(0), "", []byte(`{"topic":"a","data":1,"extra":2}`))
	f.Add(uint8(1), "application/json; charset=utf-8", []byte(`{"messages":[{"topic":"a","data":1},{"topic":"b","data":"s"}]}`))
	f.Add(uint8(1), "", []byte(`{"messages":[{"topic":"a","data":1},{"topic":"","data":2}]}`))
	f.Add(uint8(1), "", []byte(`{"messages":[]}`))
	f.Add(uint8(2), "", []byte(`{"data":[1,2,3]}`))
	f.Add(uint8(2), "", []byte(`{"data":"`+string(bytes.Repeat([]byte("x"), 300))+`"}`))
	f.Fuzz(func(t *testing.T, which uint8, ctype string, body []byte) {
		local := &recorder{}
		b := bus.New(bus.Config{MaxDataBytes: 256, MaxTopics: 64}, local)
		mux := http.NewServeMux()
		Register(mux, b)
		path := fuzzPaths[int(which)%len(fuzzPaths)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)

		var answer map[string]json.RawMessage
		if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
			t.Fatalf("HTTP %d answer %q is not a JSON object: %v", w.Code, w.Body.Bytes(), err)
		}
		published := local.delivered + local.broadcast
		if w.Code != http.StatusOK {
			if published != 0 || b.Published() != 0 {
				t.Fatalf("HTTP %d for %q, yet %d messages were published", w.Code, body, published)
			}
			if _, ok := answer["error"]; !ok {
				t.Fatalf("HTTP %d answer %s has no error", w.Code, w.Body.Bytes())
			}
			return
		}
		var reqs []PublishRequest
		switch path {
		case "/v1/publish":
			var p PublishRequest
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("accepted a body Go cannot decode: %q: %v", body, err)
			}
			reqs = []PublishRequest{p}
		case "/v1/publish/batch":
			var br BatchRequest
			if err := json.Unmarshal(body, &br); err != nil {
				t.Fatalf("accepted a batch Go cannot decode: %q: %v", body, err)
			}
			reqs = br.Messages
		default:
			var br BroadcastRequest
			if err := json.Unmarshal(body, &br); err != nil || !json.Valid(br.Data) || local.broadcast != 1 {
				t.Fatalf("broadcast %q accepted: %v, %d broadcasts", body, err, local.broadcast)
			}
			return
		}
		if published != len(reqs) || len(reqs) == 0 {
			t.Fatalf("200 for %d messages but %d published", len(reqs), published)
		}
		for _, p := range reqs {
			if wire.ValidTopic(p.Topic) != nil || !json.Valid(p.Data) || len(p.Data) > 256 {
				t.Fatalf("published %q on %q", p.Data, p.Topic)
			}
			if ti, ok := b.Topic(p.Topic); !ok || ti.LastSeq == 0 {
				t.Fatalf("topic %q not published: %+v", p.Topic, ti)
			}
		}
	})
}
