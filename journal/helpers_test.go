package journal

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/replfs/replfs/internal/gfid"
)

// fakeClock is an injectable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var testEpoch = time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)

// testGFID returns a recognizable gfid: 00000000-0000-0000-0000-0000000000nn.
func testGFID(n byte) gfid.GFID { return gfid.GFID{15: n} }

// openTest opens a journal in dir with manual rollovers only (the ticker
// period is far beyond any test) unless opts says otherwise, and closes
// it when the test ends.
func openTest(t testing.TB, dir string, opts Options) *Journal {
	t.Helper()
	opts.Dir = dir
	if opts.Rollover == 0 {
		opts.Rollover = time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t)
	}
	j, err := Open(opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// appendOp appends one record inside its own operation section.
func appendOp(t testing.TB, j *Journal, r Record) Record {
	t.Helper()
	j.Enter()
	defer j.Exit()
	if err := j.Append(&r); err != nil {
		t.Fatalf("append %v: %v", r.Op, err)
	}
	return r
}

func entry(n byte) Record {
	return Record{Op: OpCreate, GFID: testGFID(n), Parent: gfid.Root, Name: "f" + string('a'+rune(n%26)), Mode: 0o100644}
}

func rollover(t testing.TB, j *Journal) {
	t.Helper()
	if err := j.Rollover(); err != nil {
		t.Fatalf("rollover: %v", err)
	}
}

// readAll reads every record of dir from seq from on.
func readAll(t testing.TB, dir string, from uint64, o ReaderOptions) []Record {
	t.Helper()
	r, err := NewReader(dir, from, o)
	if err != nil {
		t.Fatalf("new reader: %v", err)
	}
	defer r.Close()
	return drain(t, r)
}

// drain reads r up to io.EOF.
func drain(t testing.TB, r *Reader) []Record {
	t.Helper()
	var out []Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		out = append(out, rec)
	}
}

func seqs(recs []Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// files lists the names in dir with the given suffix or infix.
func files(t testing.TB, dir, contains string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.Contains(e.Name(), contains) {
			out = append(out, e.Name())
		}
	}
	return out
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// crash abandons j the way a killed daemon would: the active segment is
// left open and unsealed.
func (j *Journal) crash() {
	j.stopOnce.Do(func() { close(j.stop) })
	<-j.done
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closed = true
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
}

func activePath(t testing.TB, dir string) string {
	t.Helper()
	open := files(t, dir, openSuffix)
	if len(open) != 1 {
		t.Fatalf("open segments: %v", open)
	}
	return filepath.Join(dir, open[0])
}

func nopLogger() *zap.Logger { return zap.NewNop() }

func mustGFID(s string) gfid.GFID {
	g, err := gfid.Parse(s)
	if err != nil {
		panic(err)
	}
	return g
}
