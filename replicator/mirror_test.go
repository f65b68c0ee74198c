package replicator

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
	"github.com/replfs/replfs/journal"
)

// WriteFile replaces a file's content by renaming a new inode over its
// name, which changes the directory's times; it puts them back, since a
// content update must not change its directory. The sync-jobs pool runs
// WriteFile for several files at once: updates of files in one directory
// must still leave that directory's times as they found them.
func TestMirrorParallelWriteFilesKeepDirectoryTimes(t *testing.T) {
	root := t.TempDir()
	m := newTestMirror(t, root)

	now := time.Now().UnixNano()
	dirG := gfid.New()
	if err := m.Make(ctx, gfid.Root, "d", dirG, target.Attr{Mode: sIFDIR | 0o755, Atime: now, Mtime: now}, "", nil); err != nil {
		t.Fatal(err)
	}
	const files = 8
	src := filepath.Join(root, "src")
	if err := os.WriteFile(src, []byte(strings.Repeat("x", 64<<10)), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func() *os.File {
		f, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	var gs []gfid.GFID
	for i := range files {
		g := gfid.New()
		f := open()
		a := target.Attr{Mode: sIFREG | 0o644, Size: 64 << 10, Atime: now, Mtime: now}
		if _, err := m.CreateFile(ctx, dirG, fmt.Sprintf("f%d", i), g, fileSource(f, a.Size), a, nil); err != nil {
			t.Fatal(err)
		}
		f.Close()
		gs = append(gs, g)
	}
	dir := filepath.Join(m.path, "d")
	want := time.Unix(0, now-int64(time.Hour)).Truncate(time.Microsecond)
	ts := []unix.Timespec{unix.NsecToTimespec(want.UnixNano()), unix.NsecToTimespec(want.UnixNano())}

	for round := range 50 {
		if err := unix.UtimesNano(dir, ts); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, g := range gs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f := open()
				defer f.Close()
				a := target.Attr{Mode: sIFREG | 0o644, Size: 64 << 10, Atime: now, Mtime: now + int64(round)}
				if _, err := m.WriteFile(ctx, g, fileSource(f, a.Size), a, nil); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		var st unix.Stat_t
		if err := unix.Lstat(dir, &st); err != nil {
			t.Fatal(err)
		}
		if got := time.Unix(0, st.Mtim.Nano()); !got.Equal(want) {
			t.Fatalf("round %d: after %d parallel content updates, the directory's mtime is %v, want %v (unchanged)",
				round, files, got, want)
		}
	}
}

// newTestMirror makes and opens a new mirror at root/mirror, closed at
// the end of the test.
func newTestMirror(t *testing.T, root string) *Mirror {
	t.Helper()
	m := NewMirror(filepath.Join(root, "mirror"))
	if err := os.Mkdir(m.path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.Open(ctx, "brick-"+gfid.New().String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// newTestBrick makes a brick root at root/brick, as the tree a replicator
// reads.
func newTestBrick(t *testing.T, root string) (*brickTree, string) {
	t.Helper()
	p := filepath.Join(root, "brick")
	brickDir(t, p, ".", gfid.Root, gfid.Zero)
	return &brickTree{newTree(p, gfid.XattrTrusted, gfid.XtimeTrusted)}, p
}

// brickDir makes directory rel under brick root as gfid g, with its gfid
// xattr and index pointer (parent/name), as the mount does.
func brickDir(t *testing.T, root, rel string, g, parent gfid.GFID) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(p, gfid.XattrTrusted, g[:], 0); err != nil {
		t.Fatal(err)
	}
	if g == gfid.Root {
		return
	}
	setPointer(t, root, g, parent, filepath.Base(rel))
}

func setPointer(t *testing.T, root string, g, parent gfid.GFID, name string) {
	t.Helper()
	ip := filepath.Join(root, g.IndexPath())
	if err := os.MkdirAll(filepath.Dir(ip), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(gfid.DirPointer(parent, name), ip+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(ip+".new", ip); err != nil {
		t.Fatal(err)
	}
}

// A directory's attributes are synced while a rename of one of its
// ancestors is between its two steps on the brick (renamed, index pointer
// not yet rewritten): its brick path leads nowhere for a moment. The sync
// must wait for the rename, not take the directory for gone and skip it
// (which left the mirror with the times its new entries gave it).
func TestSyncMetaWaitsOutAnAncestorRenameOnTheBrick(t *testing.T) {
	root := t.TempDir()
	b, brickRoot := newTestBrick(t, root)
	a, d := gfid.New(), gfid.New()
	brickDir(t, brickRoot, "A", a, gfid.Root)
	brickDir(t, brickRoot, "A/D", d, a)
	old := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	if err := os.Chtimes(filepath.Join(brickRoot, "A/D"), old, old); err != nil {
		t.Fatal(err)
	}

	m := newTestMirror(t, root)
	now := time.Now().UnixNano()
	for _, e := range []struct {
		parent, g gfid.GFID
		name      string
	}{{gfid.Root, a, "A"}, {a, d, "D"}} {
		if err := m.Make(ctx, e.parent, e.name, e.g, target.Attr{Mode: sIFDIR | 0o755, Atime: now, Mtime: now}, "", nil); err != nil {
			t.Fatal(err)
		}
	}

	// The brick's A is renamed; its index pointer follows 300 ms later.
	if err := os.Rename(filepath.Join(brickRoot, "A"), filepath.Join(brickRoot, "A2")); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(300 * time.Millisecond)
		setPointer(t, brickRoot, a, gfid.Root, "A2")
	}()
	s := newSyncer(context.Background(), b, m, zap.NewNop(), &counters{}, 1, false)
	err := s.retry("meta", d, "A2/D", func() error { return s.syncMeta(d) })
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if n := s.c.failures.Load(); n != 0 {
		t.Fatalf("%d failures counted", n)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(m.path, "A/D"), &st); err != nil {
		t.Fatal(err)
	}
	if got := time.Unix(0, st.Mtim.Nano()); !got.Equal(old) {
		t.Fatalf("mirror A/D mtime %v, want the brick's %v: its attributes were skipped during the rename", got, old)
	}
}

// After a restart, the first batches replay records the last daemon may
// have been applying when it died, possibly inside a content update,
// after renaming the new content over a name and before putting back its
// directory's times. A replayed data record whose content is already on
// the mirror then changes nothing on its own: the replay must still bring
// the file's directory back to the brick's times.
func TestReplayedDataRecordRestoresItsDirectoryTimes(t *testing.T) {
	root := t.TempDir()
	b, brickRoot := newTestBrick(t, root)
	d, g := gfid.New(), gfid.New()
	brickDir(t, brickRoot, "D", d, gfid.Root)
	fp := filepath.Join(brickRoot, "D/f")
	if err := os.WriteFile(fp, []byte("content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(fp, gfid.XattrTrusted, g[:], 0); err != nil {
		t.Fatal(err)
	}
	ip := filepath.Join(brickRoot, g.IndexPath())
	if err := os.MkdirAll(filepath.Dir(ip), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(fp, ip); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	for _, p := range []string{fp, filepath.Join(brickRoot, "D")} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}

	m := newTestMirror(t, root)
	if err := m.Make(ctx, gfid.Root, "D", d, target.Attr{Mode: sIFDIR | 0o755, Atime: old.UnixNano(), Mtime: old.UnixNano()}, "", nil); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(fp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateFile(ctx, d, "f", g, fileSource(src, 8), target.Attr{Mode: sIFREG | 0o644, Size: 8, Atime: old.UnixNano(), Mtime: old.UnixNano()}, nil); err != nil {
		t.Fatal(err)
	}
	src.Close()
	mdir := filepath.Join(m.path, "D")
	mtime := func() time.Time {
		var st unix.Stat_t
		if err := unix.Lstat(mdir, &st); err != nil {
			t.Fatal(err)
		}
		return time.Unix(0, st.Mtim.Nano())
	}
	for _, replay := range []bool{false, true} {
		// What a content update cut short leaves: the rename's time.
		if err := os.Chtimes(mdir, time.Now(), time.Now()); err != nil {
			t.Fatal(err)
		}
		s := newSyncer(context.Background(), b, m, zap.NewNop(), &counters{}, 2, false)
		s.replay = replay
		if err := s.applyRecords([]journal.Record{{Op: journal.OpData, GFID: g}}); err != nil {
			t.Fatal(err)
		}
		if got := mtime(); replay && !got.Equal(old) {
			t.Fatalf("after a replayed data record, mirror D's mtime is %v, want the brick's %v", got, old)
		} else if !replay && got.Equal(old) {
			t.Logf("a live data record also restored the directory's times")
		}
	}
}

// ctx is the context of the tests' target calls.
var ctx = context.Background()

func fileSource(f *os.File, size int64) target.Source {
	return target.FileSource{Fd: int(f.Fd()), Path: f.Name(), Len: size}
}
