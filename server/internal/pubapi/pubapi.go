// Package pubapi is the publish API on the admin listener: JSON over HTTP
// for publishers (POST /v1/publish, /v1/publish/batch, /v1/broadcast) and
// for looking at topics (GET /v1/topics, /v1/topics/{topic}).
//
// Bad requests get a 4xx with a JSON error and change nothing: a batch is
// checked whole before any of it is published. Handlers run on net/http's
// goroutines and share nothing but the bus, which is safe for concurrent
// use.
package pubapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"wspush/server/internal/admin"
	"wspush/server/internal/bus"
	"wspush/server/wire"
)

// Bus is what the API needs of the message bus.
type Bus interface {
	Publish(topic string, data []byte) (*bus.Message, error)
	Broadcast(data []byte) (*bus.Message, error)
	Topics() []bus.TopicInfo
	Topic(name string) (bus.TopicInfo, bool)
	MaxDataBytes() int
}

// MaxBatch caps the messages in one batch request.
const MaxBatch = 1000

// API serves the publish API.
type API struct{ b Bus }

// Register adds the API's routes to mux.
func Register(mux interface {
	Handle(pattern string, h http.Handler)
}, b Bus) {
	a := &API{b: b}
	mux.Handle("POST /v1/publish", http.HandlerFunc(a.publish))
	mux.Handle("POST /v1/publish/batch", http.HandlerFunc(a.batch))
	mux.Handle("POST /v1/broadcast", http.HandlerFunc(a.broadcast))
	mux.Handle("GET /v1/topics", http.HandlerFunc(a.topics))
	mux.Handle("GET /v1/topics/{topic...}", http.HandlerFunc(a.topic))
}

type apiError struct {
	Error string `json:"error"`
}

func fail(w http.ResponseWriter, status int, format string, args ...any) {
	admin.WriteJSON(w, status, apiError{Error: fmt.Sprintf(format, args...)})
}

// PublishRequest is the body of POST /v1/publish and an element of a batch.
type PublishRequest struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// PublishResponse answers a publish.
type PublishResponse struct {
	Topic string `json:"topic"`
	Seq   uint64 `json:"seq"`
}

// decode reads exactly one JSON value of at most limit bytes into v,
// rejecting unknown fields and trailing data. It returns the HTTP status
// for a failure.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) (int, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" && !bytes.HasPrefix([]byte(ct), []byte("application/json;")) {
		return http.StatusUnsupportedMediaType, fmt.Errorf("content type must be application/json, not %q", ct)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, fmt.Errorf("body is larger than %d bytes", limit)
		}
		if errors.Is(err, io.EOF) {
			return http.StatusBadRequest, errors.New("empty body")
		}
		return http.StatusBadRequest, fmt.Errorf("bad JSON body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return http.StatusBadRequest, errors.New("bad JSON body: data after the JSON value")
	}
	return 0, nil
}

// check validates one publish; it returns the HTTP status for a failure.
func (a *API) check(p PublishRequest) (int, error) {
	if err := wire.ValidTopic(p.Topic); err != nil {
		return http.StatusBadRequest, err
	}
	if len(p.Data) == 0 {
		return http.StatusBadRequest, errors.New(`missing field "data"`)
	}
	if len(p.Data) > a.b.MaxDataBytes() {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("data is %d bytes, over the %d-byte cap", len(p.Data), a.b.MaxDataBytes())
	}
	return 0, nil
}

// status maps a bus error to an HTTP status.
func status(err error) int {
	switch {
	case errors.Is(err, bus.ErrOverloaded):
		return http.StatusServiceUnavailable
	case errors.Is(err, bus.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, bus.ErrTooManyTopic):
		return http.StatusInsufficientStorage
	default:
		return http.StatusBadRequest
	}
}

func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	var p PublishRequest
	if code, err := decode(w, r, int64(a.b.MaxDataBytes())+1024, &p); err != nil {
		fail(w, code, "%v", err)
		return
	}
	if code, err := a.check(p); err != nil {
		fail(w, code, "%v", err)
		return
	}
	m, err := a.b.Publish(p.Topic, p.Data)
	if err != nil {
		if errors.Is(err, bus.ErrOverloaded) {
			w.Header().Set("Retry-After", "1")
		}
		fail(w, status(err), "%v", err)
		return
	}
	admin.WriteJSON(w, http.StatusOK, PublishResponse{Topic: p.Topic, Seq: m.Seq})
}

// BatchRequest is the body of POST /v1/publish/batch.
type BatchRequest struct {
	Messages []PublishRequest `json:"messages"`
}

// BatchResponse answers a batch: one result per message, in order. When
// publishing stops part way (overload), Error says why and Results holds
// the ones published.
type BatchResponse struct {
	Results []PublishResponse `json:"results"`
	Error   string            `json:"error,omitempty"`
}

func (a *API) batch(w http.ResponseWriter, r *http.Request) {
	var req BatchRequest
	limit := int64(MaxBatch) * (int64(a.b.MaxDataBytes()) + 256)
	if code, err := decode(w, r, limit, &req); err != nil {
		fail(w, code, "%v", err)
		return
	}
	if len(req.Messages) == 0 || len(req.Messages) > MaxBatch {
		fail(w, http.StatusBadRequest, "a batch holds 1 to %d messages, not %d", MaxBatch, len(req.Messages))
		return
	}
	for i, p := range req.Messages {
		if code, err := a.check(p); err != nil {
			fail(w, code, "message %d: %v", i, err)
			return
		}
	}
	resp := BatchResponse{Results: make([]PublishResponse, 0, len(req.Messages))}
	for _, p := range req.Messages {
		m, err := a.b.Publish(p.Topic, p.Data)
		if err != nil {
			resp.Error = err.Error()
			if errors.Is(err, bus.ErrOverloaded) {
				w.Header().Set("Retry-After", "1")
			}
			admin.WriteJSON(w, status(err), resp)
			return
		}
		resp.Results = append(resp.Results, PublishResponse{Topic: p.Topic, Seq: m.Seq})
	}
	admin.WriteJSON(w, http.StatusOK, resp)
}

// BroadcastRequest is the body of POST /v1/broadcast.
type BroadcastRequest struct {
	Data json.RawMessage `json:"data"`
}

// BroadcastResponse answers a broadcast with its broadcast seq.
type BroadcastResponse struct {
	Seq uint64 `json:"seq"`
}

func (a *API) broadcast(w http.ResponseWriter, r *http.Request) {
	var req BroadcastRequest
	if code, err := decode(w, r, int64(a.b.MaxDataBytes())+1024, &req); err != nil {
		fail(w, code, "%v", err)
		return
	}
	if len(req.Data) == 0 {
		fail(w, http.StatusBadRequest, `missing field "data"`)
		return
	}
	m, err := a.b.Broadcast(req.Data)
	if err != nil {
		if errors.Is(err, bus.ErrOverloaded) {
			w.Header().Set("Retry-After", "1")
		}
		fail(w, status(err), "%v", err)
		return
	}
	admin.WriteJSON(w, http.StatusOK, BroadcastResponse{Seq: m.Seq})
}

func (a *API) topics(w http.ResponseWriter, _ *http.Request) {
	admin.WriteJSON(w, http.StatusOK, map[string]any{"topics": a.b.Topics()})
}

func (a *API) topic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("topic")
	if err := wire.ValidTopic(name); err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	ti, ok := a.b.Topic(name)
	if !ok {
		fail(w, http.StatusNotFound, "no topic %q", name)
		return
	}
	admin.WriteJSON(w, http.StatusOK, ti)
}
