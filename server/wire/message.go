package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Message types of protocol v1.
const (
	TypeWelcome = "welcome" // server → client, always the first frame
	TypeTick    = "tick"    // server → client, the periodic push
	TypePing    = "ping"    // client → server
	TypePong    = "pong"    // server → client, the answer to ping
	TypeError   = "error"   // server → client
	TypeSub     = "sub"     // client → server (reserved in v1)
	TypeUnsub   = "unsub"   // client → server (reserved in v1)
	TypePub     = "pub"     // client → server (reserved in v1)
)

// Error codes carried by error frames.
const (
	CodeBadRequest     = "bad_request"
	CodeNotImplemented = "not_implemented"
)

// MaxIDBytes bounds the client's correlation id (its JSON text).
const MaxIDBytes = 128

// ClientMsg is a decoded client → server frame.
type ClientMsg struct {
	Type string
	// ID is the client's correlation id as JSON text (a string or a number),
	// echoed verbatim in the reply; nil when absent.
	ID []byte
}

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
	Type *string         `json:"type"`
	ID   json.RawMessage `json:"id"`
}

// ParseClient decodes one client frame. Any input is accepted: a frame that
// is not a valid v1 message gives a *ProtocolError. The returned ID aliases
// b.
func ParseClient(b []byte) (ClientMsg, error) {
	var f clientFields
	if len(bytes.TrimSpace(b)) == 0 || bytes.TrimSpace(b)[0] != '{' {
		return ClientMsg{}, badRequest("a message must be a JSON object")
	}
	if err := json.Unmarshal(b, &f); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return ClientMsg{}, badRequest("malformed JSON at byte %d", se.Offset)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return ClientMsg{}, badRequest("field %q has the wrong type", te.Field)
		}
		return ClientMsg{}, badRequest("malformed JSON")
	}
	if f.Type == nil {
		return ClientMsg{}, badRequest("missing field \"type\"")
	}
	m := ClientMsg{Type: *f.Type}
	if len(f.ID) > 0 && !bytes.Equal(f.ID, []byte("null")) {
		if len(f.ID) > MaxIDBytes {
			return ClientMsg{}, badRequest("field \"id\" is longer than %d bytes", MaxIDBytes)
		}
		if c := f.ID[0]; c != '"' && c != '-' && (c < '0' || c > '9') {
			return ClientMsg{}, badRequest("field \"id\" must be a string or a number")
		}
		m.ID = f.ID
	}
	switch m.Type {
	case TypePing:
		if m.ID == nil {
			return ClientMsg{}, badRequest("missing field \"id\"")
		}
	case TypeSub, TypeUnsub, TypePub:
		return m, &ProtocolError{Code: CodeNotImplemented, Reason: "\"" + m.Type + "\" is reserved and not available in this version"}
	default:
		return m, badRequest("unknown type %q", truncate(m.Type, 32))
	}
	return m, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// AppendWelcome appends the welcome payload.
func AppendWelcome(dst []byte, id string, intervalMS int64, text string) []byte {
	dst = append(dst, `{"type":"welcome","id":`...)
	dst = AppendString(dst, id)
	dst = append(dst, `,"interval_ms":`...)
	dst = strconv.AppendInt(dst, intervalMS, 10)
	dst = append(dst, `,"text":`...)
	dst = AppendString(dst, text)
	return append(dst, '}')
}

// AppendTick appends a tick payload: seq is the connection's push number
// (1, 2, 3, …), due the intended send time in Unix nanoseconds; text is
// left out when empty.
func AppendTick(dst []byte, seq uint64, due int64, text string) []byte {
	dst = append(dst, `{"type":"tick","seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"due":`...)
	dst = strconv.AppendInt(dst, due, 10)
	if text != "" {
		dst = append(dst, `,"text":`...)
		dst = AppendString(dst, text)
	}
	return append(dst, '}')
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
