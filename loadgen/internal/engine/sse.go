package engine

import (
	"bytes"
	"fmt"
	"net"
)

// The SSE transport (Config.SSE): a GET of the server's /sse stream
// instead of an upgrade. The events' data is the JSON a WebSocket frame
// would carry, so the Handler gets the same payloads through OnMessage;
// comments (heartbeats), ids and retry fields are skipped. An SSE client
// sends nothing after its request: WriteText is a no-op, and Close shuts
// the socket down (Abort).

// handshakeSSE sends the request and reads the response head, wanting a
// 200 with Content-Type text/event-stream. It returns the bytes that came
// after the head (the first events).
func handshakeSSE(nc net.Conn, host, path string) ([]byte, error) {
	var req [512]byte
	if _, err := nc.Write(appendSSERequest(req[:0], host, path)); err != nil {
		return nil, err
	}
	return readResponseHead(nc, checkSSEResponse)
}

// checkSSEResponse wants "HTTP/1.1 200" and an event stream.
func checkSSEResponse(h []byte) error {
	line, rest := cutLine(h)
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " {
		return fmt.Errorf("%w: status line %q", ErrBadHandshake, clip(line))
	}
	if code := string(line[9:12]); code != "200" {
		if code == "503" || code == "429" {
			return rejected(code, rest)
		}
		return fmt.Errorf("%w: status %s", ErrBadHandshake, clip(line[9:]))
	}
	for len(rest) > 0 {
		line, rest = cutLine(rest)
		name, val, ok := cutColon(line)
		if ok && equalFold(name, "content-type") {
			if !bytes.HasPrefix(val, []byte("text/event-stream")) {
				return fmt.Errorf("%w: content type %q", ErrBadHandshake, clip(val))
			}
			return nil
		}
	}
	return fmt.Errorf("%w: no Content-Type", ErrBadHandshake)
}

// feedSSE parses data (a read from the socket) into events. c.rest holds
// an incomplete line; c.frag the data lines of an event that a read cut,
// so that a connection keeps no buffer between whole reads.
func (c *Conn) feedSSE(data []byte, now int64, h Handler, maxMsg int) error {
	if len(c.rest) > 0 {
		c.rest = append(c.rest, data...)
		data = c.rest
	}
	var one []byte // the event's only data line so far, still in data
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimSuffix(data[:i], []byte("\r"))
		data = data[i+1:]
		switch {
		case len(line) == 0: // the end of an event
			switch {
			case one != nil:
				h.OnMessage(c, one, now)
				one = nil
			case c.fragging:
				msg := c.frag
				c.frag, c.fragging = nil, false
				h.OnMessage(c, msg, now)
			}
		case bytes.HasPrefix(line, []byte("data:")):
			v := bytes.TrimPrefix(line[5:], []byte(" "))
			if len(v) > maxMsg {
				return fmt.Errorf("%w: event over %d bytes", ErrProtocol, maxMsg)
			}
			if one == nil && !c.fragging {
				one = v
				continue
			}
			if one != nil {
				c.frag, c.fragging, one = append(c.frag[:0], one...), true, nil
			}
			if len(c.frag)+1+len(v) > maxMsg {
				return fmt.Errorf("%w: event over %d bytes", ErrProtocol, maxMsg)
			}
			c.frag = append(append(c.frag, '\n'), v...)
		}
	}
	if one != nil { // the read ended inside the event
		c.frag, c.fragging = append(c.frag[:0], one...), true
	}
	switch {
	case len(data) == 0:
		c.rest = nil
	case len(data) > maxMsg:
		return fmt.Errorf("%w: line over %d bytes", ErrProtocol, maxMsg)
	default:
		c.rest = append(c.rest[:0], data...) // may overlap: append copies as memmove
	}
	return nil
}
