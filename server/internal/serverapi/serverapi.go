// Package serverapi is the server API on the admin listener, next to the
// publish API and behind the same admin token: disconnect a user (POST
// /v1/users/{user}/disconnect), unsubscribe a user from a topic (POST
// /v1/users/{user}/unsubscribe) and read a topic's history (GET
// /v1/history/{topic}). A user is a connection's JWT sub: with
// authentication off connections have no user and the user routes answer
// 400.
//
// Bad requests get a 4xx with a JSON error and change nothing. Handlers
// run on net/http's goroutines and share nothing but the gateway and the
// bus, which are safe for concurrent use.
package serverapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"wspush/server/internal/admin"
	"wspush/server/internal/bus"
	"wspush/server/internal/hub"
	"wspush/server/wire"
)

// Users is what the API needs of the gateway; an error means connections
// have no user (authentication is off).
type Users interface {
	DisconnectUser(user string, r hub.Reason) (int, error)
	UnsubscribeUser(user, topic string) (conns, unsubscribed int, err error)
}

// History reads a topic's history (the node's local bus).
type History interface {
	History(topic string, q bus.HistoryQuery) (bus.HistoryPage, bool)
}

// History read limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// DefaultCode and DefaultReason close a disconnected user's connections
// when the request names none.
const (
	DefaultCode   = 4000
	DefaultReason = "disconnected by the server"
)

// maxBody caps a request body.
const maxBody = 4096

type api struct {
	users Users
	hist  History
}

// Register adds the API's routes to mux.
func Register(mux interface {
	Handle(pattern string, h http.Handler)
}, users Users, hist History) {
	a := &api{users: users, hist: hist}
	mux.Handle("POST /v1/users/{user}/disconnect", http.HandlerFunc(a.disconnect))
	mux.Handle("POST /v1/users/{user}/unsubscribe", http.HandlerFunc(a.unsubscribe))
	mux.Handle("GET /v1/history/{topic...}", http.HandlerFunc(a.history))
}

func fail(w http.ResponseWriter, status int, format string, args ...any) {
	admin.WriteJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// decode reads one JSON object into v, rejecting unknown fields and
// trailing data; an empty body leaves v as it is when emptyOK.
func decode(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) (int, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" && !bytes.HasPrefix([]byte(ct), []byte("application/json;")) {
		return http.StatusUnsupportedMediaType, fmt.Errorf("content type must be application/json, not %q", ct)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return http.StatusRequestEntityTooLarge, fmt.Errorf("body is larger than %d bytes", maxBody)
		case errors.Is(err, io.EOF) && emptyOK:
			return 0, nil
		case errors.Is(err, io.EOF):
			return http.StatusBadRequest, errors.New("empty body")
		}
		return http.StatusBadRequest, fmt.Errorf("bad JSON body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return http.StatusBadRequest, errors.New("bad JSON body: data after the JSON value")
	}
	return 0, nil
}

// userStatus answers a user route's failure: 400 without users, 404 for a
// user with no connection.
func userStatus(w http.ResponseWriter, err error, user string, conns int) bool {
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return true
	}
	if conns == 0 {
		fail(w, http.StatusNotFound, "user %q has no connection on this node", user)
		return true
	}
	return false
}

// DisconnectRequest is the (optional) body of POST
// /v1/users/{user}/disconnect.
type DisconnectRequest struct {
	Code   *int    `json:"code"`   // 1008 or 4000–4999; default 4000
	Reason *string `json:"reason"` // at most 123 bytes; default "disconnected by the server"
}

// DisconnectResponse answers a disconnect.
type DisconnectResponse struct {
	User         string `json:"user"`
	Disconnected int    `json:"disconnected"` // connections sent the close frame
}

func (a *api) disconnect(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	var req DisconnectRequest
	if code, err := decode(w, r, &req, true); err != nil {
		fail(w, code, "%v", err)
		return
	}
	code, text := DefaultCode, DefaultReason
	if req.Code != nil {
		code = *req.Code
	}
	if req.Reason != nil {
		text = *req.Reason
	}
	if code < 0 || code > 0xffff {
		fail(w, http.StatusBadRequest, "close code %d: want 1008 or 4000-4999", code)
		return
	}
	reason, err := hub.Disconnect(uint16(code), text)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	n, err := a.users.DisconnectUser(user, reason)
	if userStatus(w, err, user, n) {
		return
	}
	admin.WriteJSON(w, http.StatusOK, DisconnectResponse{User: user, Disconnected: n})
}

// UnsubscribeRequest is the body of POST /v1/users/{user}/unsubscribe.
type UnsubscribeRequest struct {
	Topic string `json:"topic"`
}

// UnsubscribeResponse answers an unsubscribe.
type UnsubscribeResponse struct {
	User         string `json:"user"`
	Topic        string `json:"topic"`
	Connections  int    `json:"connections"`  // the user's connections on this node
	Unsubscribed int    `json:"unsubscribed"` // those that were subscribed, now sent "unsubscribed"
}

func (a *api) unsubscribe(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	var req UnsubscribeRequest
	if code, err := decode(w, r, &req, false); err != nil {
		fail(w, code, "%v", err)
		return
	}
	if err := wire.ValidTopic(req.Topic); err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	conns, n, err := a.users.UnsubscribeUser(user, req.Topic)
	if userStatus(w, err, user, conns) {
		return
	}
	admin.WriteJSON(w, http.StatusOK, UnsubscribeResponse{User: user, Topic: req.Topic, Connections: conns, Unsubscribed: n})
}

// HistoryMessage is one message of a history read.
type HistoryMessage struct {
	Seq  uint64          `json:"seq"`
	TS   int64           `json:"ts"` // Unix ns when the server accepted it, as in msg frames
	Data json.RawMessage `json:"data"`
}

// HistoryResponse answers GET /v1/history/{topic}.
type HistoryResponse struct {
	Topic       string           `json:"topic"`
	Epoch       string           `json:"epoch"`
	LastSeq     uint64           `json:"last_seq"`
	HistoryGone bool             `json:"history_gone,omitempty"`
	More        bool             `json:"more"`
	Messages    []HistoryMessage `json:"messages"`
}

func (a *api) history(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("topic")
	if err := wire.ValidTopic(name); err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	q, err := query(r)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	p, ok := a.hist.History(name, q)
	if !ok {
		fail(w, http.StatusNotFound, "no topic %q", name)
		return
	}
	resp := HistoryResponse{Topic: name, Epoch: p.Epoch, LastSeq: p.Last, HistoryGone: p.Gone, More: p.More,
		Messages: make([]HistoryMessage, len(p.Messages))}
	for i, m := range p.Messages {
		resp.Messages[i] = HistoryMessage{Seq: m.Seq, TS: m.TS, Data: m.Data}
	}
	admin.WriteJSON(w, http.StatusOK, resp)
}

// query reads since, epoch and limit.
func query(r *http.Request) (bus.HistoryQuery, error) {
	v := r.URL.Query()
	q := bus.HistoryQuery{Epoch: v.Get("epoch"), Limit: DefaultLimit}
	if s := v.Get("since"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return q, fmt.Errorf("since must be a sequence number, not %q", s)
		}
		q.Since, q.HasSince = n, true
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return q, fmt.Errorf("limit must be 1 to %d, not %q", MaxLimit, s)
		}
		q.Limit = n
	}
	return q, nil
}
