package snapshot

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
	"time"

	"wspush/server/internal/bus"
)

// FuzzLoad: any file either loads, and then it has the magic, this
// version and a matching checksum, or is refused with nothing loaded; it
// never panics.
func FuzzLoad(f *testing.F) {
	a := bus.New(bus.Config{}, &local{})
	for i := range 3 {
		if _, err := a.Publish("t", []byte{'1' + byte(i)}); err != nil {
			f.Fatal(err)
		}
	}
	if _, err := a.Publish("u", []byte(`{"a":[1,2]}`)); err != nil {
		f.Fatal(err)
	}
	var file bytes.Buffer
	e := newEncoder(&file)
	if err := a.Export(e); err != nil {
		f.Fatal(err)
	}
	if err := e.finish(); err != nil {
		f.Fatal(err)
	}
	f.Add(file.Bytes())
	f.Add(withCRC([]byte(Magic + "\x01\x00\x00\x00\x00\x00\x00")))
	f.Add(withCRC([]byte(Magic + "\x01\x00\x00\x00\x00\x01\x01\x01a\x01e\x01\x01\x00\x01\x00\x011\x00\x00\x011")))
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, _, err := decodeBus(bytes.NewReader(data), int64(len(data)), bus.Config{MaxDataBytes: 64, HistorySize: 4}, &local{}, time.Now())
		if (b == nil) == (err == nil) {
			t.Fatalf("bus %v and error %v", b != nil, err)
		}
		if err != nil {
			return
		}
		n := len(data) - 4
		if n < headerBytes || string(data[:len(Magic)]) != Magic || binary.LittleEndian.Uint32(data[len(Magic):]) != Version ||
			binary.LittleEndian.Uint32(data[n:]) != crc32.Checksum(data[:n], castagnoli) {
			t.Fatalf("loaded a file that fails its header or checksum: %q", data)
		}
		for _, ti := range b.Topics() {
			if ti.HistoryLen > 4 {
				t.Fatalf("history over the cap: %+v", ti)
			}
		}
	})
}
