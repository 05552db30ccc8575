// Package wire is wspush's wire protocol v1: the JSON text frames a server
// and its clients exchange, and the WebSocket framing the server uses to
// write them. It is shared by the server and by wsload, so both sides agree
// byte for byte; docs/protocol.md is its specification.
//
// Encoders are append-style (AppendTick(dst, …) []byte) and allocate nothing
// when dst has room, which is what keeps the push path allocation-free.
// Decoders accept any input: bad bytes give an error, never a panic.
//
// Concurrency: the package holds no state; every function is safe to call
// from any goroutine.
package wire
