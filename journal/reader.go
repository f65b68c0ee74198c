package journal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	Path                string
	First, Last         uint64 // First from the name; Last is 0 when it holds no record
	FirstTime, LastTime int64  // unix nanoseconds of its first and last record
	Closed              bool
	Records             int
}

// listRetries bounds how often a listing is retried when a segment it
// named was sealed or removed before it could be opened.
const listRetries = 10

// Segments describes every segment in dir, in seq order. Closed segments
// are checked fully; the open one is read up to its first bad frame, as
// a torn or in-progress tail is normal there.
func Segments(dir string) ([]SegmentInfo, error) {
	for try := 0; ; try++ {
		infos, err := segments(dir)
		if errors.Is(err, fs.ErrNotExist) && try < listRetries {
			continue // raced with a rollover or retention
		}
		return infos, err
	}
}

func segments(dir string) ([]SegmentInfo, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	infos := make([]SegmentInfo, 0, len(segs))
	for _, s := range segs {
		res, err := scanFile(dir, s)
		if err != nil {
			return nil, err
		}
		infos = append(infos, SegmentInfo{
			Path: segPath(dir, s.name), First: s.first, Last: res.last,
			FirstTime: res.firstTime, LastTime: res.lastTime,
			Closed: !s.open, Records: res.records,
		})
	}
	return infos, nil
}

// ReaderOptions configure a Reader.
type ReaderOptions struct {
	// IncludeOpen also reads the active segment, whose records may still
	// belong to operations in flight.
	IncludeOpen bool
}

// Reader reads records in seq order across segments. It is a cursor: at
// io.EOF it keeps its place, and a later Next sees records of segments
// sealed (or, with IncludeOpen, appended) since.
type Reader struct {
	dir    string
	o      ReaderOptions
	next   uint64 // the seq wanted next; lower ones are skipped
	f      *os.File
	seg    segName
	fr     frameReader
	header bool // the current segment's header has been checked
	closed bool
}

// NewReader returns a Reader positioned at the first record of dir with
// Seq >= from.
func NewReader(dir string, from uint64, o ReaderOptions) (*Reader, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("journal reader: %w", err)
	}
	return &Reader{dir: dir, o: o, next: from}, nil
}

// Next returns the next record, or io.EOF when there is none yet.
func (r *Reader) Next() (Record, error) {
	if r.closed {
		return Record{}, ErrClosed
	}
	for {
		if r.f == nil {
			ok, err := r.advance()
			if err != nil || !ok {
				return Record{}, orEOF(err)
			}
		}
		rec, err := r.read()
		if err == nil {
			if rec.Seq < r.next {
				continue
			}
			r.next = rec.Seq + 1
			return rec, nil
		}
		if err != io.EOF {
			return Record{}, err
		}
		if r.seg.open {
			sealed, serr := r.sealedMeanwhile()
			if serr != nil || !sealed {
				return Record{}, orEOF(serr)
			}
			continue // read what was added before the seal, then move on
		}
		r.closeSegment()
	}
}

func orEOF(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}

// read returns the next record of the current segment, or io.EOF at its
// end. In an open segment an incomplete frame is an end for now: the
// writer may be in the middle of it.
func (r *Reader) read() (Record, error) {
	if !r.header {
		if err := r.fr.header(); err != nil {
			var fe *frameError
			if errors.As(err, &fe) && r.seg.open && !fe.hard {
				return Record{}, io.EOF
			}
			return Record{}, r.corrupt(err)
		}
		r.header = true
	}
	off := r.fr.off
	p, err := r.fr.next()
	var fe *frameError
	switch {
	case err == io.EOF:
		return Record{}, io.EOF
	case errors.As(err, &fe) && r.seg.open:
		return Record{}, io.EOF
	case err != nil:
		return Record{}, r.corrupt(err)
	}
	var rec Record
	if err := Decode(p, &rec); err != nil {
		return Record{}, fmt.Errorf("segment %s offset %d: %w", r.seg.name, off, err)
	}
	return rec, nil
}

func (r *Reader) corrupt(err error) error {
	var fe *frameError
	if errors.As(err, &fe) {
		return fmt.Errorf("%w: segment %s %v", ErrCorrupt, r.seg.name, fe)
	}
	return fmt.Errorf("read segment %s: %w", r.seg.name, err)
}

// sealedMeanwhile reports whether the open segment being read is gone
// from its name: it was sealed (or emptied away), so its content is final
// and what is left of it can be read as from a closed segment.
func (r *Reader) sealedMeanwhile() (bool, error) {
	_, err := os.Stat(segPath(r.dir, r.seg.name))
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("journal reader: %w", err)
	}
	r.seg.open = false
	return true, nil
}

// advance opens the first segment that may hold r.next. It reports false
// when there is none yet.
func (r *Reader) advance() (bool, error) {
	for try := 0; ; try++ {
		segs, err := listSegments(r.dir)
		if err != nil {
			return false, err
		}
		var pick *segName
		for i := range segs {
			s := &segs[i]
			if s.open && !r.o.IncludeOpen {
				continue
			}
			if s.open || s.last >= r.next {
				pick = s
				break
			}
		}
		if pick == nil {
			return false, nil
		}
		f, err := os.Open(segPath(r.dir, pick.name))
		if errors.Is(err, fs.ErrNotExist) && try < listRetries {
			continue // sealed or removed since the listing
		}
		if err != nil {
			return false, fmt.Errorf("journal reader: %w", err)
		}
		r.f, r.seg, r.header = f, *pick, false
		r.fr = frameReader{f: f, buf: r.fr.buf[:0]}
		return true, nil
	}
}

func (r *Reader) closeSegment() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// Close releases the reader.
func (r *Reader) Close() error {
	r.closeSegment()
	r.closed = true
	return nil
}

// Oldest returns the seq of the first record the journal in dir still
// holds (the first seq of its oldest segment, open or sealed); ok is false
// when there is no segment.
func Oldest(dir string) (seq uint64, ok bool, err error) {
	segs, err := listSegments(dir)
	if err != nil || len(segs) == 0 {
		return 0, false, err
	}
	return segs[0].first, true, nil
}
