package wire

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
)

// Server-Sent Events (the SSE transport, docs/protocol.md "SSE"). Every
// server → client message goes to an SSE client as one event whose data is
// the same JSON text as the WebSocket frame's payload:
//
//	event: <the message's "type">
//	id: <topic positions>        (topic messages and subscribed only)
//	data: <JSON>
//	<blank line>
//
// The id, when present, lists the client's position in each of its stream
// topics as topic:epoch:seq, comma-separated (topics and epochs hold no
// comma; epochs hold no colon, so the topic is what is left of the last
// two colons). EventSource sends it back as Last-Event-ID when it
// reconnects, which resumes every topic.

// SSEHeartbeat is the comment event that keeps an idle stream alive.
var SSEHeartbeat = []byte(":\n\n")

// AppendEventHead appends an event's "event:" line.
func AppendEventHead(dst []byte, event string) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, event...)
	return append(dst, '\n')
}

// AppendEventData appends the "data:" lines of a JSON text: JSON has line
// breaks only as whitespace, where they are data line breaks, which
// EventSource joins back with "\n".
func AppendEventData(dst, data []byte) []byte {
	dst = append(dst, "data: "...)
	for len(data) > 0 {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			dst = append(dst, data...)
			break
		}
		dst = append(dst, data[:i]...)
		dst = append(dst, "\ndata: "...)
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	return append(dst, '\n')
}

// AppendEvent appends a whole event: its type, the data's lines, and the
// blank line that ends it.
func AppendEvent(dst []byte, event string, data []byte) []byte {
	return append(AppendEventData(AppendEventHead(dst, event), data), '\n')
}

// EventType returns the "type" of a server message's JSON payload, which
// the encoders here always write first; "message" if there is none.
func EventType(payload []byte) string {
	const pre = `{"type":"`
	if !bytes.HasPrefix(payload, []byte(pre)) {
		return "message"
	}
	rest := payload[len(pre):]
	if i := bytes.IndexByte(rest, '"'); i > 0 && i <= 32 {
		switch t := rest[:i]; string(t) { // no allocation: the compiler converts in place
		case TypeWelcome:
			return TypeWelcome
		case TypeTick:
			return TypeTick
		case TypeMsg:
			return TypeMsg
		case TypeSubscribed:
			return TypeSubscribed
		case TypeUnsubscribed:
			return TypeUnsubscribed
		case TypeError:
			return TypeError
		case TypePresence:
			return TypePresence
		}
	}
	return "message"
}

// AppendPosition appends one topic position of an event id.
func AppendPosition(dst []byte, topic, epoch string, seq uint64) []byte {
	dst = append(dst, topic...)
	dst = append(dst, ':')
	dst = append(dst, epoch...)
	dst = append(dst, ':')
	return strconv.AppendUint(dst, seq, 10)
}

// Position is one topic's place in an SSE event id.
type Position struct {
	Topic, Epoch string
	Seq          uint64
}

// ParseEventID parses an event id (or an explicit since) made of
// AppendPosition entries joined by commas.
func ParseEventID(id string) ([]Position, error) {
	if id == "" {
		return nil, nil
	}
	var out []Position
	for _, e := range strings.Split(id, ",") {
		i := strings.LastIndexByte(e, ':')
		if i < 0 {
			return nil, errors.New("wire: event id entry " + strconv.Quote(truncate(e, 64)) + " is not topic:epoch:seq")
		}
		seq, err := strconv.ParseUint(e[i+1:], 10, 64)
		if err != nil {
			return nil, errors.New("wire: event id entry " + strconv.Quote(truncate(e, 64)) + " has a bad seq")
		}
		j := strings.LastIndexByte(e[:i], ':')
		if j < 0 {
			return nil, errors.New("wire: event id entry " + strconv.Quote(truncate(e, 64)) + " is not topic:epoch:seq")
		}
		p := Position{Topic: e[:j], Epoch: e[j+1 : i], Seq: seq}
		if err := ValidTopic(p.Topic); err != nil {
			return nil, errors.New("wire: event id entry " + strconv.Quote(truncate(e, 64)) + ": " + err.Error())
		}
		if p.Epoch == "" || len(p.Epoch) > 64 {
			return nil, errors.New("wire: event id entry " + strconv.Quote(truncate(e, 64)) + " has a bad epoch")
		}
		out = append(out, p)
	}
	return out, nil
}
