package snapshot

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"os"

	"wspush/server/internal/bus"
	"wspush/server/wire"
)

// The state file, version 1. Integers are unsigned varints (uv), zigzag
// varints (sv) or little-endian fixed width; a byte string is a uv length
// and the bytes.
//
//	magic    "WSPUSHST"                       8 bytes
//	version  1                                uint32
//	bseq     the last broadcast's seq         uv
//	topics   count                            uv
//	entries  count                            uv
//	topic × topics:
//	  name, epoch                             strings
//	  seq, history                            uv (history ≤ seq)
//	  lastpub                                 sv
//	  latest   0, or 1 then ts (sv) and data (string)
//	entry × entries, in bus-wide publish order:
//	  topic    its topic's number (0-based)   uv
//	  ts                                      sv
//	  data                                    string
//	crc      CRC-32C (Castagnoli) of every byte before it   uint32
//
// A topic's entries are its last `history` seqs, oldest first, so seqs are
// not stored. Nothing follows the checksum.

// Magic opens every state file.
const Magic = "WSPUSHST"

// Version is the format version this build writes and reads.
const Version = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors a load can meet (wrapped with the file's path and the detail).
var (
	// ErrCorrupt: the file is truncated, fails its checksum, or holds
	// something out of bounds.
	ErrCorrupt = errors.New("corrupt state file")
	// ErrForeign: the file does not start with Magic.
	ErrForeign = errors.New("not a wspush state file")
	// ErrVersion: the file has a format version this build does not read.
	ErrVersion = errors.New("unsupported state file version")
)

// headerBytes is the size of magic and version.
const headerBytes = len(Magic) + 4

// encoder writes the format; it is the bus's Exporter.
type encoder struct {
	w       *bufio.Writer
	crc     hash.Hash32
	scratch []byte
	stats   Stats
}

func newEncoder(w io.Writer) *encoder {
	e := &encoder{crc: crc32.New(castagnoli)}
	e.w = bufio.NewWriterSize(io.MultiWriter(w, e.crc), 1<<20)
	e.scratch = append(e.scratch, Magic...)
	e.scratch = binary.LittleEndian.AppendUint32(e.scratch, Version)
	return e
}

// flushScratch writes what the scratch buffer holds.
func (e *encoder) flushScratch() error {
	_, err := e.w.Write(e.scratch)
	e.stats.Bytes += int64(len(e.scratch))
	e.scratch = e.scratch[:0]
	return err
}

func (e *encoder) uv(v uint64)  { e.scratch = binary.AppendUvarint(e.scratch, v) }
func (e *encoder) sv(v int64)   { e.scratch = binary.AppendVarint(e.scratch, v) }
func (e *encoder) str(s string) { e.uv(uint64(len(s))); e.scratch = append(e.scratch, s...) }

// bytes writes a byte string without copying it into the scratch buffer.
func (e *encoder) bytes(b []byte) error {
	e.uv(uint64(len(b)))
	if err := e.flushScratch(); err != nil {
		return err
	}
	_, err := e.w.Write(b)
	e.stats.Bytes += int64(len(b))
	return err
}

func (e *encoder) Begin(s bus.Summary) error {
	e.uv(s.BroadcastSeq)
	e.uv(uint64(s.Topics))
	e.uv(uint64(s.Entries))
	return e.flushScratch()
}

func (e *encoder) Topic(st bus.TopicState) error {
	e.stats.Topics++
	e.str(st.Name)
	e.str(st.Epoch)
	e.uv(st.Seq)
	e.uv(uint64(st.History))
	e.sv(st.LastPub)
	if st.Latest == nil {
		e.scratch = append(e.scratch, 0)
		return e.flushScratch()
	}
	e.scratch = append(e.scratch, 1)
	e.sv(st.Latest.TS)
	return e.bytes(st.Latest.Data)
}

func (e *encoder) Entry(topic int, m bus.Entry) error {
	e.stats.Messages++
	e.uv(uint64(topic))
	e.sv(m.TS)
	return e.bytes(m.Data)
}

// finish writes the checksum and flushes.
func (e *encoder) finish() error {
	if err := e.w.Flush(); err != nil {
		return err
	}
	e.scratch = binary.LittleEndian.AppendUint32(e.scratch[:0], e.crc.Sum32())
	if err := e.flushScratch(); err != nil {
		return err
	}
	return e.w.Flush()
}

// decoder reads the format from a file of known size, checksumming every
// byte before the last 4 as it reads them. Every length and count it reads
// is checked against the bytes left, so a hostile file cannot make it
// allocate more than the file holds.
type decoder struct {
	body *io.LimitedReader // the file but its checksum
	r    *bufio.Reader     // over body, hashing what it reads
	crc  hash.Hash32
	size int64 // of the body
	buf  []byte
}

func newDecoder(f io.Reader, size int64) *decoder {
	d := &decoder{crc: crc32.New(castagnoli), size: size - 4}
	d.body = &io.LimitedReader{R: f, N: max(d.size, 0)}
	d.r = bufio.NewReaderSize(io.TeeReader(d.body, d.crc), 1<<20)
	return d
}

// left returns the body bytes not read yet.
func (d *decoder) left() int64 { return d.body.N + int64(d.r.Buffered()) }

// offset returns the body bytes read.
func (d *decoder) offset() int64 { return d.size - d.left() }

func (d *decoder) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

func (d *decoder) truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return d.corrupt("truncated at byte %d", d.offset())
	}
	return err
}

func (d *decoder) uv(what string, limit uint64) (uint64, error) {
	at := d.offset()
	v, err := binary.ReadUvarint(d.r)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, d.truncated(err)
		}
		return 0, d.corrupt("%s at byte %d: %v", what, at, err)
	}
	if v > limit {
		return 0, d.corrupt("%s at byte %d is %d, over %d", what, at, v, limit)
	}
	return v, nil
}

func (d *decoder) sv(what string) (int64, error) {
	at := d.offset()
	v, err := binary.ReadVarint(d.r)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, d.truncated(err)
		}
		return 0, d.corrupt("%s at byte %d: %v", what, at, err)
	}
	return v, nil
}

// bytes reads a byte string of at most limit bytes into d's buffer (valid
// until the next read).
func (d *decoder) bytes(what string, limit int) ([]byte, error) {
	n, err := d.uv(what+" length", uint64(min(int64(limit), d.left())))
	if err != nil {
		return nil, err
	}
	if cap(d.buf) < int(n) {
		d.buf = make([]byte, n)
	}
	d.buf = d.buf[:n]
	if _, err := io.ReadFull(d.r, d.buf); err != nil {
		return nil, d.truncated(err)
	}
	return d.buf, nil
}

// value reads a published value: valid JSON of at most limit bytes.
func (d *decoder) value(what string, limit int) ([]byte, error) {
	at := d.offset()
	v, err := d.bytes(what, limit)
	if err == nil && !json.Valid(v) {
		err = d.corrupt("%s at byte %d is not JSON", what, at)
	}
	return v, err
}

// header checks the magic and the version.
func (d *decoder) header() error {
	var h [headerBytes]byte
	if _, err := io.ReadFull(d.r, h[:]); err != nil {
		return fmt.Errorf("%w (%d bytes)", ErrForeign, d.size+4)
	}
	if string(h[:len(Magic)]) != Magic {
		return ErrForeign
	}
	if v := binary.LittleEndian.Uint32(h[len(Magic):]); v != Version {
		return fmt.Errorf("%w %d (this build reads %d)", ErrVersion, v, Version)
	}
	return nil
}

// decode reads the whole file into into (the bus's Restorer) and checks the
// checksum; into must be discarded unless it returns nil. maxData caps a
// value.
func (d *decoder) decode(into bus.Exporter, maxData int, stats *Stats) error {
	if err := d.header(); err != nil {
		return err
	}
	var s bus.Summary
	var err error
	if s.BroadcastSeq, err = d.uv("broadcast seq", math.MaxUint64); err != nil {
		return err
	}
	// A topic takes at least 8 bytes, an entry 3.
	topics, err := d.uv("topic count", uint64(d.left()/8))
	if err != nil {
		return err
	}
	entries, err := d.uv("entry count", uint64(d.left()/3))
	if err != nil {
		return err
	}
	if topics == 0 && entries > 0 {
		return d.corrupt("%d entries of no topic", entries)
	}
	s.Topics, s.Entries = int(topics), int(entries)
	if err := into.Begin(s); err != nil {
		return d.corrupt("%v", err)
	}
	for range topics {
		if err := d.topic(into, maxData); err != nil {
			return err
		}
		stats.Topics++
	}
	for range entries {
		if err := d.entry(into, topics, maxData); err != nil {
			return err
		}
		stats.Messages++
	}
	if d.left() != 0 {
		return d.corrupt("%d bytes after the last entry", d.left())
	}
	var sum [4]byte
	if _, err := io.ReadFull(d.body.R, sum[:]); err != nil {
		return d.corrupt("truncated checksum")
	}
	if binary.LittleEndian.Uint32(sum[:]) != d.crc.Sum32() {
		return d.corrupt("checksum mismatch")
	}
	return nil
}

func (d *decoder) topic(into bus.Exporter, maxData int) error {
	at := d.offset()
	var st bus.TopicState
	name, err := d.bytes("topic name", wire.MaxTopicBytes)
	if err != nil {
		return err
	}
	st.Name = string(name)
	epoch, err := d.bytes("epoch", bus.MaxEpochBytes)
	if err != nil {
		return err
	}
	st.Epoch = string(epoch)
	if st.Seq, err = d.uv("seq", math.MaxInt64); err != nil {
		return err
	}
	hist, err := d.uv("history count", min(st.Seq, uint64(d.left()/3)))
	if err != nil {
		return err
	}
	st.History = int(hist)
	if st.LastPub, err = d.sv("last publish"); err != nil {
		return err
	}
	has, err := d.uv("latest flag", 1)
	if err != nil {
		return err
	}
	if has == 1 {
		st.Latest = &bus.Entry{}
		if st.Latest.TS, err = d.sv("latest ts"); err != nil {
			return err
		}
		if st.Latest.Data, err = d.value("latest value", maxData); err != nil {
			return err
		}
	}
	if err := into.Topic(st); err != nil {
		return d.corrupt("topic at byte %d: %v", at, err)
	}
	return nil
}

func (d *decoder) entry(into bus.Exporter, topics uint64, maxData int) error {
	at := d.offset()
	topic, err := d.uv("entry topic", topics-1)
	if err != nil {
		return err
	}
	var e bus.Entry
	if e.TS, err = d.sv("entry ts"); err != nil {
		return err
	}
	if e.Data, err = d.value("entry value", maxData); err != nil {
		return err
	}
	if err := into.Entry(int(topic), e); err != nil {
		return d.corrupt("entry at byte %d: %v", at, err)
	}
	return nil
}

// syncDir fsyncs a directory, so that a rename or removal in it is durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
