package journal

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/replfs/replfs/internal/gfid"
)

func TestRecordsAcrossRolloversReadBackInOrder(t *testing.T) {
	dir := t.TempDir()
	clock := newClock(testEpoch)
	j := openTest(t, dir, Options{Now: clock.Now})
	var want []Record
	for seg := 0; seg < 4; seg++ {
		for i := 0; i < 5; i++ {
			clock.Advance(time.Millisecond)
			want = append(want, appendOp(t, j, entry(byte(seg*5+i+1))))
		}
		rollover(t, j)
	}
	if got := j.LastSeq(); got != 20 {
		t.Fatalf("LastSeq = %d, want 20", got)
	}
	got := readAll(t, dir, 0, ReaderOptions{})
	if !slices.Equal(got, want) {
		t.Fatalf("read back %v\nwant %v", got, want)
	}
	if !slices.Equal(seqs(got), seqRange(1, 20)) {
		t.Fatalf("seqs %v", seqs(got))
	}
	if closed := files(t, dir, closedSuffix); len(closed) != 4 {
		t.Fatalf("closed segments %v, want 4", closed)
	}
	if got := readAll(t, dir, 13, ReaderOptions{}); !slices.Equal(seqs(got), seqRange(13, 20)) {
		t.Fatalf("from 13: seqs %v", seqs(got))
	}
	if got := readAll(t, dir, 21, ReaderOptions{}); len(got) != 0 {
		t.Fatalf("from 21: %v", got)
	}
}

func TestEmptyWindowLeavesNoClosedSegment(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, Options{})
	before := files(t, dir, openSuffix)
	rollover(t, j)
	rollover(t, j)
	if closed := files(t, dir, closedSuffix); len(closed) != 0 {
		t.Fatalf("closed segments after empty windows: %v", closed)
	}
	if after := files(t, dir, openSuffix); !slices.Equal(before, after) {
		t.Fatalf("active segment changed from %v to %v", before, after)
	}
}

func TestReaderPollingSeesSegmentsSealedLater(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, Options{})
	r, err := NewReader(dir, 0, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := drain(t, r); len(got) != 0 {
		t.Fatalf("empty journal gave %v", got)
	}
	var last uint64
	for round := 1; round <= 3; round++ {
		for i := 0; i < 3; i++ {
			appendOp(t, j, entry(byte(i)))
		}
		if got := drain(t, r); len(got) != 0 {
			t.Fatalf("round %d: read %v from the active segment without IncludeOpen", round, seqs(got))
		}
		rollover(t, j)
		got := drain(t, r)
		if !slices.Equal(seqs(got), seqRange(last+1, last+3)) {
			t.Fatalf("round %d: seqs %v", round, seqs(got))
		}
		last += 3
	}
}

func TestReaderIncludeOpen(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, Options{})
	appendOp(t, j, entry(1))
	appendOp(t, j, entry(2))
	rollover(t, j)
	appendOp(t, j, entry(3))

	r, err := NewReader(dir, 0, ReaderOptions{IncludeOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := drain(t, r); !slices.Equal(seqs(got), []uint64{1, 2, 3}) {
		t.Fatalf("seqs %v", seqs(got))
	}
	appendOp(t, j, entry(4))
	if got := drain(t, r); !slices.Equal(seqs(got), []uint64{4}) {
		t.Fatalf("after append to open segment: seqs %v", seqs(got))
	}
	// Records appended just before the seal are still read, once.
	appendOp(t, j, entry(5))
	rollover(t, j)
	appendOp(t, j, entry(6))
	if got := drain(t, r); !slices.Equal(seqs(got), []uint64{5, 6}) {
		t.Fatalf("across seal: seqs %v", seqs(got))
	}
	if got := readAll(t, dir, 0, ReaderOptions{}); !slices.Equal(seqs(got), seqRange(1, 5)) {
		t.Fatalf("closed only: seqs %v", seqs(got))
	}
}

func TestCoalescing(t *testing.T) {
	g1, g2 := testGFID(1), testGFID(2)
	data := func(g gfid.GFID) Record { return Record{Op: OpData, GFID: g} }
	attr := func(g gfid.GFID, m uint32) Record { return Record{Op: OpSetattr, GFID: g, Mask: m} }
	xattr := func(op Op, name string) Record { return Record{Op: op, GFID: g1, Xattr: name} }
	unlink := Record{Op: OpUnlink, GFID: g1, Parent: gfid.Root, Name: "x"}
	const roll = OpInvalid // marks a rollover in a script
	tests := []struct {
		name    string
		script  []Record
		written []bool // per non-rollover step: got a seq
	}{
		{"data same gfid", []Record{data(g1), data(g1), data(g1)}, []bool{true, false, false}},
		{"data other gfid", []Record{data(g1), data(g2), data(g1)}, []bool{true, true, false}},
		{"data across segments", []Record{data(g1), {Op: roll}, data(g1), data(g1)}, []bool{true, true, false}},
		{"setattr by mask", []Record{attr(g1, AttrMode), attr(g1, AttrTimes), attr(g1, AttrMode)}, []bool{true, true, false}},
		{"meta and data apart", []Record{data(g1), attr(g1, AttrSize)}, []bool{true, true}},
		{"xattr by name", []Record{xattr(OpSetxattr, "user.a"), xattr(OpSetxattr, "user.b"), xattr(OpSetxattr, "user.a"), xattr(OpRemovexattr, "user.a")}, []bool{true, true, false, true}},
		{"entries never", []Record{unlink, unlink, unlink}, []bool{true, true, true}},
		{"meta across segments", []Record{attr(g1, AttrMode), {Op: roll}, attr(g1, AttrMode)}, []bool{true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := openTest(t, t.TempDir(), Options{})
			var got []bool
			for _, r := range tt.script {
				if r.Op == roll {
					rollover(t, j)
					continue
				}
				r.Seq = 99
				r = appendOp(t, j, r)
				got = append(got, r.Seq != 0)
			}
			if !slices.Equal(got, tt.written) {
				t.Fatalf("written %v, want %v", got, tt.written)
			}
		})
	}
}

func TestRolloverWaitsForOperationInFlight(t *testing.T) {
	dir := t.TempDir()
	var onRoll []uint64
	var j *Journal
	j = openTest(t, dir, Options{OnRollover: func() {
		r := Record{Op: OpData, GFID: testGFID(9)}
		if err := j.Append(&r); err != nil {
			t.Errorf("append from OnRollover: %v", err)
		}
		onRoll = append(onRoll, r.Seq)
	}})
	appendOp(t, j, entry(1))

	j.Enter() // an operation is in flight
	rolled := make(chan error)
	go func() { rolled <- j.Rollover() }()
	// A writer waiting on the gate makes TryRLock fail: Rollover is now
	// blocked on this operation.
	waitFor(t, "rollover to wait on the gate", func() bool {
		if j.gate.TryRLock() {
			j.gate.RUnlock()
			return false
		}
		return true
	})
	select {
	case err := <-rolled:
		t.Fatalf("rollover finished while an operation was in flight: %v", err)
	default:
	}
	r := entry(2)
	if err := j.Append(&r); err != nil {
		t.Fatal(err)
	}
	j.Exit()
	if err := <-rolled; err != nil {
		t.Fatal(err)
	}

	// The in-flight record is sealed with the segment Rollover closed; the
	// OnRollover record opens the next one.
	if got := readAll(t, dir, 0, ReaderOptions{}); !slices.Equal(seqs(got), []uint64{1, 2}) {
		t.Fatalf("closed segment seqs %v", seqs(got))
	}
	if !slices.Equal(onRoll, []uint64{3}) {
		t.Fatalf("OnRollover seqs %v", onRoll)
	}
	segs, err := Segments(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 2 || segs[1].Closed || segs[1].First != 3 || segs[1].Records != 1 {
		t.Fatalf("segments %+v", segs)
	}
}

func TestConcurrentOperationsWithTickerRollovers(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, Options{Rollover: time.Millisecond})
	const workers, per = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				j.Enter()
				r := entry(byte(w))
				err := j.Append(&r)
				d := Record{Op: OpData, GFID: testGFID(byte(w))}
				if err == nil {
					err = j.Append(&d)
				}
				j.Exit()
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	last := j.LastSeq()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, dir, 0, ReaderOptions{})
	if !slices.Equal(seqs(got), seqRange(1, last)) {
		t.Fatalf("seqs not 1..%d: %d records", last, len(got))
	}
	entries := 0
	for _, r := range got {
		if r.Kind() == KindEntry {
			entries++
		}
	}
	if entries != workers*per {
		t.Fatalf("%d entries, want %d", entries, workers*per)
	}
}

func TestClosedJournal(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, Options{})
	appendOp(t, j, entry(1))
	for i := 0; i < 2; i++ {
		if err := j.Close(); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
	}
	r := entry(2)
	checks := map[string]error{
		"append":       j.Append(&r),
		"sync":         j.Sync(),
		"rollover":     j.Rollover(),
		"set consumer": j.SetConsumer("a", 1),
	}
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after close: %v, want ErrClosed", name, err)
		}
	}
	if got := files(t, dir, closedSuffix); len(got) != 1 {
		t.Fatalf("close did not seal: %v", got)
	}
}

func TestSyncAndInvalidAppend(t *testing.T) {
	j := openTest(t, t.TempDir(), Options{})
	appendOp(t, j, entry(1))
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(&Record{Op: opMax}); err == nil {
		t.Fatal("append of an invalid op succeeded")
	}
	big := Record{Op: OpSymlink, Target: string(make([]byte, maxPayload))}
	if err := j.Append(&big); err == nil || big.Seq != 0 {
		t.Fatalf("append of an oversized record: %v (seq %d)", err, big.Seq)
	}
	if got := appendOp(t, j, entry(2)); got.Seq != 2 {
		t.Fatalf("seq after rejected appends: %d", got.Seq)
	}
}

func TestSeqsContinueAfterReopen(t *testing.T) {
	dir := t.TempDir()
	clock := newClock(testEpoch)
	j := openTest(t, dir, Options{Now: clock.Now, Retention: time.Minute})
	appendOp(t, j, entry(1))
	appendOp(t, j, entry(2))
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openTest(t, dir, Options{Now: clock.Now, Retention: time.Minute})
	if got := appendOp(t, j, entry(3)); got.Seq != 3 {
		t.Fatalf("seq after reopen %d, want 3", got.Seq)
	}
	rollover(t, j)
	// Retention removes every closed segment; the empty active segment
	// left by Close still remembers where seqs resume.
	clock.Advance(time.Hour)
	rollover(t, j)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if got := files(t, dir, closedSuffix); len(got) != 0 {
		t.Fatalf("closed segments left: %v", got)
	}
	j = openTest(t, dir, Options{Now: clock.Now, Retention: time.Minute})
	if got := appendOp(t, j, entry(4)); got.Seq != 4 {
		t.Fatalf("seq after reopen with no closed segment %d, want 4", got.Seq)
	}
}

func TestSegments(t *testing.T) {
	dir := t.TempDir()
	clock := newClock(testEpoch)
	j := openTest(t, dir, Options{Now: clock.Now})
	appendOp(t, j, entry(1))
	clock.Advance(time.Second)
	appendOp(t, j, entry(2))
	rollover(t, j)
	appendOp(t, j, entry(3))
	got, err := Segments(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []SegmentInfo{
		{Path: filepath.Join(dir, closedName(1, 2)), First: 1, Last: 2, FirstTime: testEpoch.UnixNano(),
			LastTime: testEpoch.Add(time.Second).UnixNano(), Closed: true, Records: 2},
		{Path: filepath.Join(dir, openName(3)), First: 3, Last: 3, FirstTime: testEpoch.Add(time.Second).UnixNano(),
			LastTime: testEpoch.Add(time.Second).UnixNano(), Records: 1},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("segments\n%+v\nwant\n%+v", got, want)
	}
}

func TestAppendDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	j := openTest(t, t.TempDir(), Options{})
	r := entry(1)
	d := Record{Op: OpData, GFID: testGFID(1)}
	for name, rec := range map[string]*Record{"entry": &r, "coalesced data": &d} {
		allocs := testing.AllocsPerRun(200, func() {
			j.Enter()
			if err := j.Append(rec); err != nil {
				t.Fatal(err)
			}
			j.Exit()
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per Append", name, allocs)
		}
	}
}

func BenchmarkAppendEntry(b *testing.B) {
	j := openTest(b, b.TempDir(), Options{Logger: nopLogger()})
	r := Record{Op: OpCreate, GFID: gfid.New(), Parent: gfid.New(), Name: "some-file-name.txt", Mode: 0o100644, UID: 1000, GID: 1000}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j.Enter()
		if err := j.Append(&r); err != nil {
			b.Fatal(err)
		}
		j.Exit()
		if i%100000 == 99999 {
			b.StopTimer()
			rollover(b, j)
			b.StartTimer()
		}
	}
}

func BenchmarkAppendDataCoalesced(b *testing.B) {
	j := openTest(b, b.TempDir(), Options{Logger: nopLogger()})
	gs := make([]gfid.GFID, 64)
	for i := range gs {
		gs[i] = gfid.New()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := Record{Op: OpData, GFID: gs[i%len(gs)]}
		j.Enter()
		if err := j.Append(&r); err != nil {
			b.Fatal(err)
		}
		j.Exit()
	}
}

func ExampleFormat() {
	r := Record{Seq: 12, Time: testEpoch.UnixNano(), Op: OpRename, GFID: testGFID(7),
		Parent: gfid.Root, Name: "old name", Parent2: testGFID(2), Name2: "new"}
	fmt.Println(Format(&r))
	// Output: 12 2026-11-23T10:00:00.123456789Z E 00000000-0000-0000-0000-000000000007 RENAME 00000000-0000-0000-0000-000000000001/"old name" 00000000-0000-0000-0000-000000000002/new
}

func TestReaderFollowsLiveJournal(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, Options{Rollover: time.Millisecond})
	const n = 2000
	go func() {
		for i := 0; i < n; i++ {
			j.Enter()
			r := entry(byte(i))
			err := j.Append(&r)
			j.Exit()
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for _, o := range []ReaderOptions{{IncludeOpen: true}, {}} {
		r, err := NewReader(dir, 0, o)
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		waitFor(t, "the reader to catch up", func() bool {
			got = append(got, seqs(drain(t, r))...)
			return len(got) >= n
		})
		r.Close()
		if !slices.Equal(got, seqRange(1, n)) {
			t.Fatalf("%+v: read %d records, not 1..%d in order", o, len(got), n)
		}
	}
}

// TestAppendSeveralRecordsAtOnce: an entry and its data record go out in
// one call with consecutive seqs; a D already in the segment, or twice in
// the call, is skipped.
func TestAppendSeveralRecordsAtOnce(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, Options{Rollover: time.Hour})
	g := gfid.New()
	create := &Record{Op: OpCreate, GFID: g, Parent: gfid.Root, Name: "f"}
	d1, d2 := &Record{Op: OpData, GFID: g}, &Record{Op: OpData, GFID: g}
	j.Enter()
	if err := j.Append(create, d1, d2); err != nil {
		t.Fatal(err)
	}
	again := &Record{Op: OpData, GFID: g}
	if err := j.Append(again); err != nil {
		t.Fatal(err)
	}
	j.Exit()
	if create.Seq != 1 || d1.Seq != 2 || d2.Seq != 0 || again.Seq != 0 {
		t.Fatalf("seqs %d %d %d %d, want 1 2 0 0", create.Seq, d1.Seq, d2.Seq, again.Seq)
	}
	if create.Time != d1.Time || create.Time == 0 {
		t.Errorf("times %d %d", create.Time, d1.Time)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, dir, 0, ReaderOptions{IncludeOpen: true})
	if len(recs) != 2 || recs[0].Op != OpCreate || recs[1].Op != OpData {
		t.Fatalf("read back %+v", recs)
	}
}
