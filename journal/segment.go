package journal

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const (
	formatVersion = 1
	headerSize    = 8
	frameHeader   = 8
	// maxPayload bounds a record; real ones stay under a few KiB (two
	// names, a symlink target, an xattr name). A larger length word can
	// only be damage.
	maxPayload = 1 << 20

	segPrefix    = "seg-"
	openSuffix   = ".open"
	closedSuffix = ".rjl"
	tornInfix    = ".torn-"
	seqDigits    = 20
)

var (
	segMagic = [4]byte{'R', 'P', 'L', 'J'}
	castagn  = crc32.MakeTable(crc32.Castagnoli)

	// errVersion marks a segment written by an unknown format version.
	errVersion = errors.New("unsupported journal format version")
)

// segName is a segment file parsed from its name.
type segName struct {
	name  string
	first uint64
	last  uint64 // 0 for an open segment
	open  bool
}

func openName(first uint64) string {
	return fmt.Sprintf("%s%0*d%s", segPrefix, seqDigits, first, openSuffix)
}

func closedName(first, last uint64) string {
	return fmt.Sprintf("%s%0*d-%0*d%s", segPrefix, seqDigits, first, seqDigits, last, closedSuffix)
}

// parseSegName reports whether name is a segment and what it holds.
// Torn-tail copies, temporary files and anything else are not segments.
func parseSegName(name string) (segName, bool) {
	s := segName{name: name}
	rest, ok := strings.CutPrefix(name, segPrefix)
	if !ok {
		return s, false
	}
	if body, ok := strings.CutSuffix(rest, openSuffix); ok {
		first, ok := parseSeq(body)
		s.first, s.open = first, true
		return s, ok
	}
	body, ok := strings.CutSuffix(rest, closedSuffix)
	if !ok || len(body) != 2*seqDigits+1 || body[seqDigits] != '-' {
		return s, false
	}
	first, ok1 := parseSeq(body[:seqDigits])
	last, ok2 := parseSeq(body[seqDigits+1:])
	s.first, s.last = first, last
	return s, ok1 && ok2 && first <= last && first > 0
}

func parseSeq(s string) (uint64, bool) {
	if len(s) != seqDigits {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// listSegments returns the segments in dir ordered by first seq, closed
// before open for the same first seq.
func listSegments(dir string) ([]segName, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list journal %s: %w", dir, err)
	}
	var segs []segName
	for _, e := range ents {
		if s, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			segs = append(segs, s)
		}
	}
	slices.SortFunc(segs, func(a, b segName) int {
		if a.first != b.first {
			if a.first < b.first {
				return -1
			}
			return 1
		}
		if a.open != b.open {
			if b.open {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	return segs, nil
}

func segHeader() [headerSize]byte {
	var h [headerSize]byte
	copy(h[:], segMagic[:])
	binary.LittleEndian.PutUint16(h[4:], formatVersion)
	return h
}

func pad8(n int) int { return (n + 7) &^ 7 }

// putFrame fills the frame header of buf, whose payload starts at
// buf[frameHeader:], and pads buf to a multiple of 8 bytes.
func putFrame(buf []byte) []byte {
	n := len(buf) - frameHeader
	binary.LittleEndian.PutUint32(buf[0:], uint32(n))
	binary.LittleEndian.PutUint32(buf[4:], crc32.Checksum(buf[frameHeader:], castagn))
	for len(buf) < frameHeader+pad8(n) {
		buf = append(buf, 0)
	}
	return buf
}

// frameError is a frame that cannot be read: the start of a torn tail in
// an open segment, corruption in a closed one.
type frameError struct {
	off    int64
	reason string
	hard   bool // damage, never a torn write (bad magic)
}

func (e *frameError) Error() string { return fmt.Sprintf("offset %d: %s", e.off, e.reason) }

// frameReader reads frames through a window over a file that may still
// be growing: bytes already read stay valid, because segments are only
// appended to.
type frameReader struct {
	f      io.ReaderAt
	off    int64 // offset of the next frame
	buf    []byte
	bufOff int64
	chunk  int // read size; 0 means readChunk
}

const readChunk = 64 << 10

// peek returns the n bytes at off; io.EOF if there are none,
// io.ErrUnexpectedEOF if there are fewer.
func (fr *frameReader) peek(off int64, n int) ([]byte, error) {
	if off >= fr.bufOff && off+int64(n) <= fr.bufOff+int64(len(fr.buf)) {
		i := int(off - fr.bufOff)
		return fr.buf[i : i+n], nil
	}
	size := max(n, cmp.Or(fr.chunk, readChunk))
	if cap(fr.buf) < size {
		fr.buf = make([]byte, size)
	}
	m, err := fr.f.ReadAt(fr.buf[:size], off)
	fr.buf, fr.bufOff = fr.buf[:m], off
	if m >= n {
		return fr.buf[:n], nil
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	if m == 0 {
		return nil, io.EOF
	}
	return nil, io.ErrUnexpectedEOF
}

// header checks the segment header. A missing or zeroed header is a
// *frameError (torn at creation); other mismatches are hard errors.
func (fr *frameReader) header() error {
	h, err := fr.peek(0, headerSize)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return &frameError{off: 0, reason: "short header"}
	case err != nil:
		return err
	case allZero(h):
		return &frameError{off: 0, reason: "zeroed header"}
	case [4]byte(h[:4]) != segMagic:
		return &frameError{off: 0, reason: fmt.Sprintf("bad magic %q", h[:4]), hard: true}
	}
	if v := binary.LittleEndian.Uint16(h[4:]); v != formatVersion {
		return fmt.Errorf("%w %d (this build reads %d)", errVersion, v, formatVersion)
	}
	fr.off = headerSize
	return nil
}

// next returns the payload of the next frame, valid until the next call;
// io.EOF at a clean end, *frameError for a bad or incomplete frame (off
// is left at that frame so that a reader of a growing file can retry).
func (fr *frameReader) next() ([]byte, error) {
	h, err := fr.peek(fr.off, frameHeader)
	if err == io.EOF {
		return nil, io.EOF
	}
	if err == io.ErrUnexpectedEOF {
		return nil, &frameError{off: fr.off, reason: "short frame header"}
	}
	if err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(h[0:])
	sum := binary.LittleEndian.Uint32(h[4:])
	if n == 0 || n > maxPayload {
		return nil, &frameError{off: fr.off, reason: fmt.Sprintf("bad frame length %d", n)}
	}
	total := frameHeader + pad8(int(n))
	fb, err := fr.peek(fr.off, total)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return nil, &frameError{off: fr.off, reason: "short frame"}
	}
	if err != nil {
		return nil, err
	}
	p := fb[frameHeader : frameHeader+int(n)]
	if crc32.Checksum(p, castagn) != sum {
		return nil, &frameError{off: fr.off, reason: "crc mismatch"}
	}
	if !allZero(fb[frameHeader+int(n):]) {
		return nil, &frameError{off: fr.off, reason: "non-zero padding"}
	}
	fr.off += int64(total)
	return p, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// scanResult summarizes a scanned segment.
type scanResult struct {
	first, last         uint64
	firstTime, lastTime int64
	records             int
	end                 int64       // offset just past the last good frame
	bad                 *frameError // open segments: where the torn tail starts
}

// scanSegment reads a whole segment and checks every record: frames, the
// payload codec and seqs (s.first, then consecutive; up to s.last for a
// closed segment). A bad frame is fatal in a closed segment; in an open
// one it ends the scan and is reported in bad. fn, if not nil, sees every
// good record. size, if known, saves reading small files in large chunks.
func scanSegment(f io.ReaderAt, s segName, size int64, fn func(*Record) error) (scanResult, error) {
	res := scanResult{first: s.first}
	fr := frameReader{f: f}
	if size > 0 && size < readChunk {
		fr.chunk = int(size)
	}
	corrupt := func(off int64, format string, args ...any) error {
		return fmt.Errorf("%w: segment %s offset %d: %s", ErrCorrupt, s.name, off, fmt.Sprintf(format, args...))
	}
	if err := fr.header(); err != nil {
		var fe *frameError
		if errors.As(err, &fe) && s.open && !fe.hard {
			res.bad = fe
			return res, nil
		}
		if fe != nil {
			return res, corrupt(fe.off, "%s", fe.reason)
		}
		return res, fmt.Errorf("segment %s: %w", s.name, err)
	}
	res.end = fr.off
	var r Record
	for {
		off := fr.off
		p, err := fr.next()
		if err == io.EOF {
			break
		}
		var fe *frameError
		if errors.As(err, &fe) {
			if s.open {
				res.bad = fe
				break
			}
			return res, corrupt(fe.off, "%s", fe.reason)
		}
		if err != nil {
			return res, fmt.Errorf("read segment %s: %w", s.name, err)
		}
		if err := Decode(p, &r); err != nil {
			return res, fmt.Errorf("segment %s offset %d: %w", s.name, off, err)
		}
		if want := s.first + uint64(res.records); r.Seq != want {
			return res, corrupt(off, "seq %d, want %d", r.Seq, want)
		}
		if fn != nil {
			if err := fn(&r); err != nil {
				return res, err
			}
		}
		if res.records == 0 {
			res.firstTime = r.Time
		}
		res.last, res.lastTime = r.Seq, r.Time
		res.records++
		res.end = fr.off
	}
	if !s.open && (res.records == 0 || res.last != s.last) {
		return res, corrupt(res.end, "ends at seq %d, name says %d", res.last, s.last)
	}
	return res, nil
}

// fsyncDir makes renames, creations and removals in dir durable.
func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for fsync: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

func segPath(dir string, name string) string { return filepath.Join(dir, name) }
