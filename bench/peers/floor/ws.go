package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"strconv"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

const (
	maxMessage   = 64 << 10 // largest client message, in one frame or several
	maxHandshake = 8 << 10  // largest upgrade request
	wsGUID       = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
)

// appendFrame appends an unmasked, unfragmented server frame.
func appendFrame(dst []byte, op byte, p []byte) []byte {
	dst = append(dst, 0x80|op)
	switch {
	case len(p) < 126:
		dst = append(dst, byte(len(p)))
	case len(p) <= 0xFFFF:
		dst = binary.BigEndian.AppendUint16(append(dst, 126), uint16(len(p)))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, 127), uint64(len(p)))
	}
	return append(dst, p...)
}

func closePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// input acts on bytes read from c: the upgrade request, then frames. What
// is left of an incomplete request or frame waits in c.in.
func (s *shard) input(c *conn, p []byte) {
	data := p
	if len(c.in) > 0 {
		c.in = append(c.in, p...)
		data = c.in
	}
	if !c.upgraded {
		n := s.handshake(c, data)
		if c.fd < 0 {
			return
		}
		data = data[n:]
	}
	for c.upgraded && c.fd >= 0 && len(data) > 0 {
		n := s.frame(c, data)
		if n == 0 {
			break
		}
		data = data[n:]
	}
	switch {
	case c.fd < 0:
	case len(data) == 0:
		c.in = nil
	default:
		c.in = append(c.in[:0], data...) // memmove when data is inside c.in
	}
}

// handshake answers a complete upgrade request at the start of data and
// returns its length, or returns 0 while the request is incomplete.
func (s *shard) handshake(c *conn, data []byte) int {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		if len(data) > maxHandshake {
			s.reject(c, "431 Request Header Fields Too Large", "")
		}
		return 0
	}
	line, headers, _ := bytes.Cut(data[:end], []byte("\r\n"))
	parts := bytes.Fields(line)
	if len(parts) != 3 || string(parts[0]) != "GET" {
		s.reject(c, "405 Method Not Allowed", "")
		return 0
	}
	if path, _, _ := bytes.Cut(parts[1], []byte("?")); string(path) != "/ws" {
		s.reject(c, "404 Not Found", "")
		return 0
	}
	var key, version []byte
	upgrade := false
	for len(headers) > 0 {
		var h []byte
		h, headers, _ = bytes.Cut(headers, []byte("\r\n"))
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Key")):
			key = value
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Version")):
			version = value
		case bytes.EqualFold(name, []byte("Upgrade")):
			upgrade = bytes.EqualFold(value, []byte("websocket"))
		}
	}
	if len(key) == 0 || !upgrade {
		s.reject(c, "400 Bad Request", "")
		return 0
	}
	if string(version) != "13" {
		s.reject(c, "426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n")
		return 0
	}
	sum := sha1.Sum(append(append([]byte(nil), key...), wsGUID...))
	b := append(s.scratch[:0], "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = base64.StdEncoding.AppendEncode(b, sum[:])
	b = append(b, "\r\n\r\n"...)
	w := append([]byte(`{"type":"welcome","id":"c`), strconv.FormatUint(s.srv.nextID.Add(1), 36)...)
	w = append(w, `","interval_ms":`...)
	w = strconv.AppendInt(w, s.srv.interval.Milliseconds(), 10)
	w = append(w, `,"text":"`+welcomeText+`"}`...)
	b = appendFrame(b, opText, w)
	s.scratch = b
	if s.send(c, b) {
		s.upgrade(c)
	}
	return end + 4
}

// reject answers a request that is not an upgrade to /ws and closes.
func (s *shard) reject(c *conn, status, header string) {
	_ = s.send(c, []byte("HTTP/1.1 "+status+"\r\n"+header+"Content-Length: 0\r\nConnection: close\r\n\r\n"))
	s.close(c)
}

// fail closes c with a close frame carrying code.
func (s *shard) fail(c *conn, code uint16, reason string) {
	_ = s.send(c, appendFrame(nil, opClose, closePayload(code, reason)))
	s.close(c)
}

// frame acts on one complete client frame at the start of data and returns
// its length, or returns 0 while the frame is incomplete or c was closed.
func (s *shard) frame(c *conn, data []byte) int {
	if len(data) < 2 {
		return 0
	}
	fin, op := data[0]&0x80 != 0, data[0]&0x0f
	if data[0]&0x70 != 0 || data[1]&0x80 == 0 {
		s.fail(c, 1002, "frames must be masked and carry no RSV bits")
		return 0
	}
	n, h := uint64(data[1]&0x7f), 2
	switch n {
	case 126:
		if len(data) < 4 {
			return 0
		}
		n, h = uint64(binary.BigEndian.Uint16(data[2:])), 4
	case 127:
		if len(data) < 10 {
			return 0
		}
		n, h = binary.BigEndian.Uint64(data[2:]), 10
	}
	if op >= opClose && (n > 125 || !fin) {
		s.fail(c, 1002, "bad control frame")
		return 0
	}
	if n > maxMessage || uint64(len(c.msg))+n > maxMessage {
		s.fail(c, 1009, "message too big")
		return 0
	}
	size := h + 4 + int(n)
	if len(data) < size {
		return 0
	}
	mask, payload := data[h:h+4], data[h+4:size]
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	switch op {
	case opText, opBinary:
		if c.msgOp != 0 {
			s.fail(c, 1002, "expected a continuation frame")
			return 0
		}
		if fin {
			s.message(c, op, payload)
		} else {
			c.msgOp, c.msg = op, append(c.msg[:0], payload...)
		}
	case opCont:
		if c.msgOp == 0 {
			s.fail(c, 1002, "unexpected continuation frame")
			return 0
		}
		c.msg = append(c.msg, payload...)
		if fin {
			s.message(c, c.msgOp, c.msg)
			c.msgOp, c.msg = 0, nil
		}
	case opPing:
		s.scratch = appendFrame(s.scratch[:0], opPong, payload)
		s.send(c, s.scratch)
	case opPong:
	case opClose:
		s.send(c, appendFrame(nil, opClose, payload[:min(len(payload), 2)]))
		s.close(c)
		return 0
	default:
		s.fail(c, 1002, "unknown opcode")
		return 0
	}
	return size
}

type clientMsg struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id"`
}

// message answers {"type":"ping","id":X} with {"type":"pong","id":X};
// anything else is ignored.
func (s *shard) message(c *conn, op byte, p []byte) {
	if op != opText || !bytes.Contains(p, []byte(`"ping"`)) {
		return
	}
	var m clientMsg
	if json.Unmarshal(p, &m) != nil || m.Type != "ping" || len(m.ID) == 0 {
		return
	}
	var id bytes.Buffer
	_ = json.Compact(&id, m.ID)
	pong := append(append([]byte(`{"type":"pong","id":`), id.Bytes()...), '}')
	s.scratch = appendFrame(s.scratch[:0], opText, pong)
	s.send(c, s.scratch)
}
