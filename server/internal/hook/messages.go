package hook

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// The JSON each hook is sent (docs/backend.md). Client is the connection's
// id, User its user (from the connect hook or the JWT; "" if none).

// ConnectRequest is posted to the connect hook for each connection that
// comes without a JWT: a WebSocket upgrade or an SSE stream (Transport
// "websocket" or "sse").
type ConnectRequest struct {
	Client     string            `json:"client"`
	RemoteAddr string            `json:"remote_addr"`
	Transport  string            `json:"transport"`
	Path       string            `json:"path"`
	Headers    map[string]string `json:"headers,omitempty"` // allow-listed
	Query      map[string]string `json:"query,omitempty"`   // allow-listed
}

// SubscribeRequest is posted to the subscribe hook for each sub.
type SubscribeRequest struct {
	Client string `json:"client"`
	User   string `json:"user"`
	Topic  string `json:"topic"`
	Mode   string `json:"mode"`
}

// RPCRequest is posted to the rpc hook for each rpc message.
type RPCRequest struct {
	Client string          `json:"client"`
	User   string          `json:"user"`
	Method string          `json:"method"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// PublishRequest is posted to the publish hook for each client pub.
type PublishRequest struct {
	Client string          `json:"client"`
	User   string          `json:"user"`
	Topic  string          `json:"topic"`
	Data   json.RawMessage `json:"data"`
}

// Answer is every hook's answer: a result, or an error.
type Answer struct {
	Result json.RawMessage `json:"result"`
	Error  *AnswerError    `json:"error"`
}

// AnswerError is a backend's refusal. Code is the error frame's code
// (rpc, publish; subscribe always answers "forbidden"); Status is the
// connect hook's HTTP-like status (400-599), sent as close code
// 4000+Status.
type AnswerError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Status  int    `json:"status"`
}

// ConnectResult is the connect hook's result: who the client is, which
// topics it may subscribe and publish to (auth's pattern language, as in
// a JWT's topics and pub claims) and, optionally, when its grant ends
// (Unix seconds).
type ConnectResult struct {
	User     string   `json:"user"`
	Topics   []string `json:"topics"`
	Pub      []string `json:"pub"`
	ExpireAt int64    `json:"expire_at"`
}

// DataResult is the subscribe and publish hooks' result: optional data
// (subscribe: sent in "subscribed"; publish: replaces the published data).
type DataResult struct {
	Data json.RawMessage `json:"data"`
}

// MaxMessageBytes bounds an error message passed on to a client.
const MaxMessageBytes = 256

// ParseAnswer decodes an answer body: exactly one of result and error, an
// error's code a short lower-case token. Anything else is ErrBadResponse.
func ParseAnswer(body []byte) (Answer, error) {
	var a Answer
	if len(bytes.TrimSpace(body)) == 0 || bytes.TrimSpace(body)[0] != '{' {
		return a, fmt.Errorf("%w: the answer is not a JSON object", ErrBadResponse)
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return a, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	hasResult := len(a.Result) > 0 && !bytes.Equal(a.Result, []byte("null"))
	switch {
	case a.Error != nil && hasResult:
		return a, fmt.Errorf("%w: both result and error", ErrBadResponse)
	case a.Error == nil && !hasResult:
		return a, fmt.Errorf("%w: neither result nor error", ErrBadResponse)
	case a.Error != nil:
		if !validCode(a.Error.Code) {
			return a, fmt.Errorf("%w: error code must be 1 to 32 of a-z 0-9 _", ErrBadResponse)
		}
		if len(a.Error.Message) > MaxMessageBytes {
			a.Error.Message = a.Error.Message[:MaxMessageBytes]
		}
	}
	return a, nil
}

// validCode accepts "" (the hook's default code) and short tokens.
func validCode(s string) bool {
	if len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
