package workers

import (
	"bytes"
	"io"
	"sync"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// prefixWriter prefixes each line a worker writes to stderr. os/exec
// copies a worker's stderr on one goroutine, but several workers share the
// destination, so mu (package-wide) serialises the writes.
type prefixWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

var mu sync.Mutex

func (p *prefixWriter) Write(b []byte) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		_, _ = io.WriteString(p.w, p.prefix+string(p.buf[:i+1]))
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}
