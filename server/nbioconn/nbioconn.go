// Package nbioconn makes an *nbio.Conn for a TCP socket that was accepted
// or connected outside nbio, so that nbio takes it as it is (nbio.NBConn
// returns it unchanged, Engine.AddConn registers it) instead of dup'ing a
// Go net.Conn. The server's raw accept (server/internal/gateway) and
// wsload's raw dial (loadgen/internal/engine) use it.
//
// nbio v1.6.8 has no constructor for this: nbio.Conn's descriptor and type
// fields are unexported. They are found by name and type when the package
// starts and written into a new Conn before anything else can see it.
// OK is false when they are not there (another nbio version); callers
// then take nbio's own paths, and TestLayout fails so the change is seen.
//
// Concurrency: OK and New may be called from any goroutine; the Conn New
// returns belongs to its caller until it is handed to nbio.
package nbioconn

import (
	"reflect"
	"unsafe"

	"github.com/lesismal/nbio"
)

var layout = func() (f struct {
	fd, typ uintptr
	ok      bool
}) {
	t := reflect.TypeFor[nbio.Conn]()
	fd, ok1 := t.FieldByName("fd")
	typ, ok2 := t.FieldByName("typ")
	if ok1 && ok2 && fd.Type.Kind() == reflect.Int && typ.Type == reflect.TypeFor[nbio.ConnType]() {
		f.fd, f.typ, f.ok = fd.Offset, typ.Offset, true
	}
	return f
}()

// OK reports whether New can build a Conn with this nbio.
func OK() bool { return layout.ok }

// New returns an *nbio.Conn of type TCP for the socket fd (non-blocking,
// its options set by the caller), in no poller yet, or nil when !OK().
// Its addresses are unset.
func New(fd int) *nbio.Conn {
	if !layout.ok {
		return nil
	}
	c := new(nbio.Conn)
	p := unsafe.Pointer(c)
	*(*int)(unsafe.Add(p, layout.fd)) = fd
	*(*nbio.ConnType)(unsafe.Add(p, layout.typ)) = nbio.ConnTypeTCP
	return c
}
