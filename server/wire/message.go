package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Message types of protocol v1.
const (
	TypeWelcome      = "welcome"      // server → client, always the first frame
	TypeTick         = "tick"         // server → client, the periodic push
	TypePing         = "ping"         // client → server
	TypePong         = "pong"         // server → client, the answer to ping
	TypeError        = "error"        // server → client
	TypeSub          = "sub"          // client → server: subscribe to a topic
	TypeSubscribed   = "subscribed"   // server → client: the answer to sub
	TypeUnsub        = "unsub"        // client → server: unsubscribe
	TypeUnsubscribed = "unsubscribed" // server → client: the answer to unsub
	TypePub          = "pub"          // client → server: publish (when allowed)
	TypePublished    = "published"    // server → client: the answer to pub
	TypeMsg          = "msg"          // server → client: a published message
	TypeRPC          = "rpc"          // client → server: a call to the application's backend (-proxy-rpc)
	TypeRPCResult    = "rpc_result"   // server → client: the backend's answer to rpc
)

// Subscription modes.
const (
	ModeStream = "stream" // every message, in order, with history and resume
	ModeLatest = "latest" // the newest value only, carried by the client's ticks
)

// BroadcastTopic is the topic of broadcast messages: every client gets
// them, whatever it subscribed to.
const BroadcastTopic = ""

// Error codes carried by error frames.
const (
	CodeBadRequest  = "bad_request"
	CodeForbidden   = "forbidden"    // e.g. pub while client publishing is off
	CodeLimit       = "limit"        // e.g. more subscriptions than allowed
	CodeOverloaded  = "overloaded"   // the server sheds a publish; retry later
	CodeRateLimited = "rate_limited" // pub faster than the connection's publish rate; retry later
	// Backend hooks (docs/backend.md); a backend's own error codes pass
	// through as well.
	CodeNotAvailable = "not_available" // rpc without an rpc hook (-proxy-rpc)
	CodeTimeout      = "timeout"       // the backend did not answer in time
	CodeUnavailable  = "unavailable"   // the backend is down or its circuit breaker is open
	CodeBadGateway   = "bad_gateway"   // the backend's answer was not valid
)

// MaxIDBytes bounds the client's correlation id (its JSON text).
const MaxIDBytes = 128

// ClientMsg is a decoded client → server frame.
type ClientMsg struct {
	Type string
	// ID is the client's correlation id as JSON text (a string or a number),
	// echoed verbatim in the reply; nil when absent.
	ID    []byte
	Topic string // sub, unsub, pub
	Mode  string // sub: ModeStream (the default) or ModeLatest
	// Since and Epoch (sub) ask for the messages after seq Since of the
	// topic's history incarnation Epoch; HasSince tells whether Since was
	// given.
	Since    uint64
	HasSince bool
	Epoch    string
	Data     []byte // pub: the JSON value to publish; rpc: its data (nil if absent)
	Method   string // rpc: the method, 1 to MaxMethodBytes bytes
	// Presence (sub): the client's ticks carry the topic's cluster-wide
	// subscriber count when it changed ("presence":{"topic":n}).
	Presence bool
}

// MaxMethodBytes bounds an rpc's method name.
const MaxMethodBytes = 128

// ProtocolError is a client frame the server refuses; Code and Reason go
// back to the client in an error frame.
type ProtocolError struct {
	Code   string
	Reason string
}

func (e *ProtocolError) Error() string { return "wire: " + e.Code + ": " + e.Reason }

func badRequest(format string, args ...any) error {
	return &ProtocolError{Code: CodeBadRequest, Reason: fmt.Sprintf(format, args...)}
}

type clientFields struct {
	Type   *string         `json:"type"`
	ID     json.RawMessage `json:"id"`
	Topic  *string         `json:"topic"`
	Mode   string          `json:"mode"`
	Since  *uint64         `json:"since"`
	Epoch  string          `json:"epoch"`
	Data   json.RawMessage `json:"data"`
	Method *string         `json:"method"`
	// Presence (sub): ticks carry the topic's subscriber count.
	Presence bool `json:"presence"`
}

// ParseClient decodes one client frame. Any input is accepted: a frame that
// is not a valid v1 message gives a *ProtocolError. The returned ID aliases
// b.
func ParseClient(b []byte) (ClientMsg, error) {
	f, err := decodeClient(b)
	if err != nil {
		return ClientMsg{}, err
	}
	if f.Type == nil {
		return ClientMsg{}, badRequest("missing field \"type\"")
	}
	m := ClientMsg{Type: *f.Type}
	if m.ID, err = parseID(f.ID); err != nil {
		return ClientMsg{}, err
	}
	switch m.Type {
	case TypePing:
		if m.ID == nil {
			return m, badRequest("missing field \"id\"")
		}
		return m, nil
	case TypeRPC:
		err := parseRPC(&f, &m)
		return m, err
	case TypeSub, TypeUnsub, TypePub:
	default:
		return m, badRequest("unknown type %q", truncate(m.Type, 32))
	}
	if f.Topic == nil {
		return m, badRequest("missing field \"topic\"")
	}
	if err := ValidTopic(*f.Topic); err != nil {
		return m, &ProtocolError{Code: CodeBadRequest, Reason: err.Error()}
	}
	m.Topic = *f.Topic
	switch m.Type {
	case TypeSub:
		err := parseSub(&f, &m)
		return m, err
	case TypePub:
		if len(f.Data) == 0 {
			return m, badRequest("missing field \"data\"")
		}
		m.Data = f.Data
	}
	return m, nil
}

// decodeClient decodes b, which must be a JSON object, into its fields.
func decodeClient(b []byte) (clientFields, error) {
	var f clientFields
	if len(bytes.TrimSpace(b)) == 0 || bytes.TrimSpace(b)[0] != '{' {
		return f, badRequest("a message must be a JSON object")
	}
	if err := json.Unmarshal(b, &f); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return f, badRequest("malformed JSON at byte %d", se.Offset)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return f, badRequest("field %q has the wrong type", te.Field)
		}
		return f, badRequest("malformed JSON")
	}
	return f, nil
}

// parseID checks a message's raw "id": absent or null gives nil, a number
// is kept as it is, a string is re-encoded.
func parseID(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	if len(raw) > MaxIDBytes {
		return nil, badRequest("field \"id\" is longer than %d bytes", MaxIDBytes)
	}
	switch c := raw[0]; {
	case c == '"':
		// Re-encode, so that the echo is escaped like every string the
		// server writes (and safe to show in a page).
		var id string
		_ = json.Unmarshal(raw, &id)
		return AppendString(nil, id), nil
	case c == '-' || c >= '0' && c <= '9':
		return raw, nil
	default:
		return nil, badRequest("field \"id\" must be a string or a number")
	}
}

// parseSub reads a sub's mode, since and epoch from f into m.
func parseSub(f *clientFields, m *ClientMsg) error {
	switch f.Mode {
	case "", ModeStream:
		m.Mode = ModeStream
	case ModeLatest:
		m.Mode = ModeLatest
	default:
		return badRequest("mode must be %q or %q", ModeStream, ModeLatest)
	}
	if f.Since != nil {
		if f.Epoch == "" {
			return badRequest("\"since\" needs the \"epoch\" it counts in")
		}
		m.Since, m.HasSince = *f.Since, true
	}
	if len(f.Epoch) > 64 {
		return badRequest("field \"epoch\" is longer than 64 bytes")
	}
	m.Epoch = f.Epoch
	m.Presence = f.Presence
	return nil
}

// parseRPC reads an rpc's method and data from f into m.
func parseRPC(f *clientFields, m *ClientMsg) error {
	if f.Method == nil || *f.Method == "" {
		return badRequest("missing field \"method\"")
	}
	if len(*f.Method) > MaxMethodBytes {
		return badRequest("field \"method\" is longer than %d bytes", MaxMethodBytes)
	}
	m.Method = *f.Method
	if len(f.Data) > 0 && !bytes.Equal(f.Data, []byte("null")) {
		m.Data = f.Data
	}
	return nil
}

// MaxTopicBytes bounds a topic name.
const MaxTopicBytes = 128

// ValidTopic reports whether name is a valid topic: 1 to 128 bytes of
// letters, digits and . _ - : / @
func ValidTopic(name string) error {
	if name == "" {
		return errors.New("topic must not be empty")
	}
	if len(name) > MaxTopicBytes {
		return fmt.Errorf("topic is longer than %d bytes", MaxTopicBytes)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-:/@", c) >= 0) {
			return fmt.Errorf("topic has a character outside letters, digits and . _ - : / @ at byte %d", i)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// AppendWelcome appends the welcome payload; firstDue, when the first tick
// is due (Unix ns), is left out when 0 (ticks off).
func AppendWelcome(dst []byte, id string, intervalMS, firstDue int64, text string) []byte {
	dst = append(dst, `{"type":"welcome","id":`...)
	dst = AppendString(dst, id)
	dst = append(dst, `,"interval_ms":`...)
	dst = strconv.AppendInt(dst, intervalMS, 10)
	if firstDue != 0 {
		dst = append(dst, `,"first_due":`...)
		dst = strconv.AppendInt(dst, firstDue, 10)
	}
	dst = append(dst, `,"text":`...)
	dst = AppendString(dst, text)
	return append(dst, '}')
}

// AppendTick appends a tick payload: seq is the connection's push number
// (1, 2, 3, …), due the intended send time in Unix nanoseconds; text is
// left out when empty.
func AppendTick(dst []byte, seq uint64, due int64, text string) []byte {
	return append(AppendTickOpen(dst, seq, due, text), '}')
}

// AppendTickOpen appends a tick payload without its closing brace, so that
// the caller can add the "topics" of latest-mode subscriptions:
// AppendTickOpen, then `,"topics":{` and LatestEntry values joined by
// commas, then `}}`.
func AppendTickOpen(dst []byte, seq uint64, due int64, text string) []byte {
	dst = append(dst, `{"type":"tick","seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"due":`...)
	dst = strconv.AppendInt(dst, due, 10)
	if text != "" {
		dst = append(dst, `,"text":`...)
		dst = AppendString(dst, text)
	}
	return dst
}

// AppendLatestEntry appends one member of a tick's "topics" object:
// "topic":{"seq":N,"data":DATA}.
func AppendLatestEntry(dst []byte, topic string, seq uint64, data []byte) []byte {
	dst = AppendString(dst, topic)
	dst = append(dst, `:{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

// AppendMsg appends a published message: seq is the topic's sequence
// number, ts when the server accepted the publish (Unix ns), data the
// published JSON value.
// MsgOverhead is the most AppendMsg adds besides the topic's and the
// value's bytes (a topic needs no escaping: see ValidTopic), for sizing a
// frame's buffer once.
const MsgOverhead = len(`{"type":"msg","topic":"","seq":18446744073709551615,"ts":-9223372036854775808,"data":}`)

func AppendMsg(dst []byte, topic string, seq uint64, ts int64, data []byte) []byte {
	dst = append(dst, `{"type":"msg","topic":`...)
	dst = AppendString(dst, topic)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

// AppendSubscribed appends the answer to sub: seq is the topic's last
// sequence number when the subscription began (what follows starts at
// seq+1, after any replay), epoch its history incarnation. historyGone
// says that the history could not cover the requested since: messages
// were lost.
func AppendSubscribed(dst []byte, topic, mode string, seq uint64, epoch string, historyGone bool, id []byte) []byte {
	return AppendSubscribedData(dst, topic, mode, seq, epoch, historyGone, nil, id)
}

// AppendSubscribedData is AppendSubscribed with the subscribe hook's data
// (JSON text, left out when nil).
func AppendSubscribedData(dst []byte, topic, mode string, seq uint64, epoch string, historyGone bool, data, id []byte) []byte {
	dst = append(dst, `{"type":"subscribed","topic":`...)
	dst = AppendString(dst, topic)
	dst = append(dst, `,"mode":`...)
	dst = AppendString(dst, mode)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"epoch":`...)
	dst = AppendString(dst, epoch)
	if historyGone {
		dst = append(dst, `,"history_gone":true`...)
	}
	if data != nil {
		dst = append(dst, `,"data":`...)
		dst = append(dst, data...)
	}
	return appendID(dst, id)
}

// AppendUnsubscribed appends the answer to unsub.
func AppendUnsubscribed(dst []byte, topic string, id []byte) []byte {
	dst = append(dst, `{"type":"unsubscribed","topic":`...)
	dst = AppendString(dst, topic)
	return appendID(dst, id)
}

// AppendPublished appends the answer to a client's pub.
func AppendPublished(dst []byte, topic string, seq uint64, id []byte) []byte {
	dst = append(dst, `{"type":"published","topic":`...)
	dst = AppendString(dst, topic)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	return appendID(dst, id)
}

func appendID(dst, id []byte) []byte {
	if id != nil {
		dst = append(dst, `,"id":`...)
		dst = append(dst, id...)
	}
	return append(dst, '}')
}

// AppendRPCResult appends the answer to an rpc: the backend's result
// (JSON text) and the rpc's id.
func AppendRPCResult(dst, data, id []byte) []byte {
	dst = append(dst, `{"type":"rpc_result","data":`...)
	dst = append(dst, data...)
	return appendID(dst, id)
}

// AppendPong appends the answer to a ping carrying id (JSON text).
func AppendPong(dst []byte, id []byte) []byte {
	dst = append(dst, `{"type":"pong","id":`...)
	dst = append(dst, id...)
	return append(dst, '}')
}

// AppendError appends an error payload; id (JSON text) is left out when nil.
func AppendError(dst []byte, code, reason string, id []byte) []byte {
	dst = append(dst, `{"type":"error","code":`...)
	dst = AppendString(dst, code)
	dst = append(dst, `,"reason":`...)
	dst = AppendString(dst, reason)
	if id != nil {
		dst = append(dst, `,"id":`...)
		dst = append(dst, id...)
	}
	return append(dst, '}')
}
