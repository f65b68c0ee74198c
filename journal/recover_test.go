package journal

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// frameOffsets returns where each frame of a segment file starts.
func frameOffsets(t *testing.T, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fr := frameReader{f: f}
	if err := fr.header(); err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for {
		off := fr.off
		if _, err := fr.next(); err == io.EOF {
			return offs
		} else if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
}

func truncateTo(n func(offs []int64, size int64) int64) func(*testing.T, string, []int64) {
	return func(t *testing.T, path string, offs []int64) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, n(offs, fi.Size())); err != nil {
			t.Fatal(err)
		}
	}
}

func appendBytes(b []byte) func(*testing.T, string, []int64) {
	return func(t *testing.T, path string, _ []int64) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
	}
}

// flipAt flips the bits of one byte at the offset at(offs).
func flipAt(at func(offs []int64) int64) func(*testing.T, string, []int64) {
	return func(t *testing.T, path string, offs []int64) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[at(offs)] ^= 0xff
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func zeroFrom(at func(offs []int64) int64, extra int) func(*testing.T, string, []int64) {
	return func(t *testing.T, path string, offs []int64) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		clear(b[at(offs):])
		b = append(b, make([]byte, extra)...)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func lastFrame(offs []int64) int64 { return offs[len(offs)-1] }

// TestOpenCutsTornTailOfCrashedSegment leaves records 1-2 in a closed
// segment and 3-7 in the active one, "crashes", damages the active
// segment and reopens.
func TestOpenCutsTornTailOfCrashedSegment(t *testing.T) {
	garbage := []byte("\x13\x00\x00\x00garbage that is not a frame at all")
	tests := []struct {
		name    string
		corrupt func(t *testing.T, path string, offs []int64)
		survive uint64 // records 1..survive remain
		torn    bool
	}{
		{"clean crash", func(*testing.T, string, []int64) {}, 7, false},
		{"truncate mid-frame", truncateTo(func(o []int64, _ int64) int64 { return lastFrame(o) + 12 }), 6, true},
		{"truncate mid-length-word", truncateTo(func(o []int64, _ int64) int64 { return lastFrame(o) + 2 }), 6, true},
		{"truncate inside padding", truncateTo(func(_ []int64, size int64) int64 { return size - 1 }), 6, true},
		{"zeroed tail", zeroFrom(lastFrame, 4096), 6, true},
		{"zeroed extension", appendBytes(make([]byte, 4096)), 7, true},
		{"garbage tail", appendBytes(garbage), 7, true},
		{"flipped crc of last record", flipAt(func(o []int64) int64 { return lastFrame(o) + 4 }), 6, true},
		{"flipped payload of a middle record", flipAt(func(o []int64) int64 { return o[2] + 10 }), 4, true},
		{"torn header", truncateTo(func([]int64, int64) int64 { return 3 }), 2, true},
		{"zeroed header", zeroFrom(func([]int64) int64 { return 0 }, 0), 2, true},
		{"empty file", truncateTo(func([]int64, int64) int64 { return 0 }), 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			j := openTest(t, dir, Options{})
			for i := byte(1); i <= 7; i++ {
				appendOp(t, j, entry(i))
				if i == 2 {
					rollover(t, j)
				}
			}
			j.crash()
			path := activePath(t, dir)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			tt.corrupt(t, path, frameOffsets(t, path))
			damaged, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			j = openTest(t, dir, Options{})
			if got := j.LastSeq(); got != tt.survive {
				t.Fatalf("LastSeq %d, want %d", got, tt.survive)
			}
			got := readAll(t, dir, 0, ReaderOptions{})
			if !slices.Equal(seqs(got), seqRange(1, tt.survive)) {
				t.Fatalf("surviving seqs %v, want 1..%d", seqs(got), tt.survive)
			}
			for i, r := range got {
				if want := entry(byte(i + 1)); r.Name != want.Name || r.GFID != want.GFID {
					t.Fatalf("record %d is %+v", i+1, r)
				}
			}
			checkTorn(t, dir, path, tt.torn, before, damaged)
			if r := appendOp(t, j, entry(9)); r.Seq != tt.survive+1 {
				t.Fatalf("next seq %d, want %d", r.Seq, tt.survive+1)
			}
		})
	}
}

// checkTorn checks that the cut bytes were kept beside the segment: the
// kept part and what was sealed together make up the damaged file.
func checkTorn(t *testing.T, dir, path string, want bool, before, damaged []byte) {
	t.Helper()
	torn := files(t, dir, tornInfix)
	if !want {
		if len(torn) != 0 {
			t.Fatalf("unexpected torn files %v", torn)
		}
		return
	}
	if len(torn) != 1 || !strings.HasPrefix(torn[0], filepath.Base(path)+tornInfix) {
		t.Fatalf("torn files %v", torn)
	}
	kept, err := os.ReadFile(filepath.Join(dir, torn[0]))
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) == 0 || !bytes.HasSuffix(damaged, kept) {
		t.Fatalf("torn file holds %d bytes that are not the tail of the damaged segment", len(kept))
	}
	if !bytes.HasPrefix(before, damaged[:len(damaged)-len(kept)]) {
		t.Fatal("kept part of the segment is not what was written")
	}
}

// closedJournal writes records 1-3, 4-6 and 7-9 in three closed segments
// and returns their paths.
func closedJournal(t *testing.T, dir string) []string {
	t.Helper()
	j := openTest(t, dir, Options{})
	for i := byte(1); i <= 9; i++ {
		appendOp(t, j, entry(i))
		if i%3 == 0 {
			rollover(t, j)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return []string{
		filepath.Join(dir, closedName(1, 3)), filepath.Join(dir, closedName(4, 6)), filepath.Join(dir, closedName(7, 9)),
	}
}

func TestOpenRefusesDamagedClosedSegment(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, segs []string)
		target  int // which segment the error must name
		is      error
	}{
		{"flipped payload byte", func(t *testing.T, s []string) {
			flipAt(func(o []int64) int64 { return o[1] + 12 })(t, s[1], frameOffsets(t, s[1]))
		}, 1, ErrCorrupt},
		{"flipped length word", func(t *testing.T, s []string) {
			flipAt(func(o []int64) int64 { return o[1] })(t, s[1], frameOffsets(t, s[1]))
		}, 1, ErrCorrupt},
		{"cut short", func(t *testing.T, s []string) {
			truncateTo(func(_ []int64, size int64) int64 { return size - 8 })(t, s[0], nil)
		}, 0, ErrCorrupt},
		{"trailing garbage", func(t *testing.T, s []string) { appendBytes([]byte("junk"))(t, s[2], nil) }, 2, ErrCorrupt},
		{"name disagrees with content", func(t *testing.T, s []string) {
			if err := os.Rename(s[2], strings.Replace(s[2], "09.rjl", "10.rjl", 1)); err != nil {
				t.Fatal(err)
			}
		}, 2, ErrCorrupt},
		{"missing middle segment", func(t *testing.T, s []string) { os.Remove(s[1]) }, 2, ErrCorrupt},
		{"unknown format version", func(t *testing.T, s []string) {
			flipAt(func([]int64) int64 { return 4 })(t, s[0], nil)
		}, 0, errVersion},
		{"bad magic", func(t *testing.T, s []string) { flipAt(func([]int64) int64 { return 0 })(t, s[0], nil) }, 0, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			segs := closedJournal(t, dir)
			tt.corrupt(t, segs)
			j, err := Open(Options{Dir: dir})
			if err == nil {
				j.Close()
				t.Fatal("open accepted a damaged closed segment")
			}
			t.Logf("open: %v", err)
			if !errors.Is(err, tt.is) {
				t.Fatalf("error %v, want %v", err, tt.is)
			}
			name := filepath.Base(segs[tt.target])
			if !strings.Contains(err.Error(), name[:len(segPrefix)+seqDigits]) {
				t.Fatalf("error %q does not name %s", err, name)
			}
			if _, err := Segments(dir); err == nil && tt.name != "missing middle segment" {
				t.Fatal("Segments accepted a damaged closed segment")
			}
		})
	}
}

func TestOpenRefusesUnknownVersionOfOpenSegment(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, Options{})
	appendOp(t, j, entry(1))
	j.crash()
	path := activePath(t, dir)
	flipAt(func([]int64) int64 { return 4 })(t, path, nil)
	_, err := Open(Options{Dir: dir})
	if !errors.Is(err, errVersion) || !strings.Contains(err.Error(), "version 254") {
		t.Fatalf("error %v", err)
	}
	if files(t, dir, tornInfix) != nil {
		t.Fatal("a segment of another version was treated as torn")
	}
}

func TestReaderReportsCorruptClosedSegment(t *testing.T) {
	dir := t.TempDir()
	segs := closedJournal(t, dir)
	flipAt(func(o []int64) int64 { return o[2] + 12 })(t, segs[1], frameOffsets(t, segs[1]))
	r, err := NewReader(dir, 0, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []uint64
	for {
		rec, err := r.Next()
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(segs[1])) {
				t.Fatalf("error %v", err)
			}
			break
		}
		got = append(got, rec.Seq)
	}
	if !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("read %v before the damage", got)
	}
}
