package engine

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// Error classes of a failed Dial (keys of result.json "errors"): refused,
// timeout, port_exhaustion, fd_limit, rejected, bad_handshake, reset, other.
const (
	ClassRefused        = "refused"         // ECONNREFUSED: nothing listening, or backlog full
	ClassTimeout        = "timeout"         // connect or upgrade took longer than -timeout
	ClassPortExhaustion = "port_exhaustion" // EADDRNOTAVAIL/EADDRINUSE: no free source port
	ClassFDLimit        = "fd_limit"        // EMFILE/ENFILE: out of file descriptors
	ClassRejected       = "rejected"        // HTTP 503 or 429 (a *RejectedError): server refused, for now
	ClassBadHandshake   = "bad_handshake"   // any other answer than a valid 101 response
	ClassReset          = "reset"           // ECONNRESET, EPIPE or EOF during the upgrade
	ClassOther          = "other"
)

// Classify maps a Dial error to one of the Class constants.
func Classify(err error) string {
	var rej *RejectedError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &rej):
		return ClassRejected
	case errors.Is(err, ErrBadHandshake):
		return ClassBadHandshake
	case errors.Is(err, syscall.ECONNREFUSED):
		return ClassRefused
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		return ClassPortExhaustion
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return ClassFDLimit
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		return ClassTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ClassReset
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ClassTimeout
	}
	return ClassOther
}

// CloseClass names why an established connection ended, for the
// "disconnects" map of result.json.
func CloseClass(err error) string {
	var ce *CloseError
	switch {
	case err == nil, errors.Is(err, ErrClosedByClient):
		return ""
	case errors.As(err, &ce):
		return "server_close_" + itoa(int(ce.Code))
	case errors.Is(err, ErrProtocol):
		return "protocol_error"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return "eof"
	case errors.Is(err, syscall.ETIMEDOUT):
		return "timeout" // keepalive or retransmissions gave up
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return "errno_" + itoa(int(errno))
	}
	return "other"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
