package replicator

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/contenthash"
	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
	"github.com/replfs/replfs/internal/target/memtarget"
	"github.com/replfs/replfs/journal"
)

// newEngineTarget returns an opened in-memory target.
func newEngineTarget(t *testing.T) *memtarget.Target {
	t.Helper()
	m := memtarget.New("mem")
	if err := m.Open(ctx, "brick-"+gfid.New().String()); err != nil {
		t.Fatal(err)
	}
	return m
}

// brickFile writes regular file rel under brick root as gfid g, with its
// gfid xattr and index hard link, as the mount does.
func brickFile(t *testing.T, root, rel string, g gfid.GFID, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	indexLink(t, root, p, g)
}

// brickSymlink makes symlink rel -> link under brick root as gfid g.
func brickSymlink(t *testing.T, root, rel string, g gfid.GFID, link string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.Symlink(link, p); err != nil {
		t.Fatal(err)
	}
	indexLink(t, root, p, g)
}

func indexLink(t *testing.T, root, p string, g gfid.GFID) {
	t.Helper()
	if err := unix.Lsetxattr(p, gfid.XattrTrusted, g[:], 0); err != nil {
		t.Fatal(err)
	}
	ip := filepath.Join(root, g.IndexPath())
	if err := os.MkdirAll(filepath.Dir(ip), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(p, ip); err != nil {
		t.Fatal(err)
	}
}

// brickHardLink gives the inode at rel the further name rel2.
func brickHardLink(t *testing.T, root, rel, rel2 string) {
	t.Helper()
	if err := os.Link(filepath.Join(root, rel), filepath.Join(root, rel2)); err != nil {
		t.Fatal(err)
	}
}

// wantEntry is what the target should hold at one path.
type wantEntry struct {
	typ  uint32
	g    gfid.GFID
	mode uint32
	sum  contenthash.Sum
	link string
	ino  uint64 // the brick's inode number, to check hard links
}

// brickWants reads the brick on disk (without .replfs) as the target
// should show it.
func brickWants(t *testing.T, root string) map[string]wantEntry {
	t.Helper()
	out := map[string]wantEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == ".replfs" {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		var g gfid.GFID
		if _, err := unix.Lgetxattr(p, gfid.XattrTrusted, g[:]); err != nil {
			return err
		}
		w := wantEntry{typ: st.Mode & unix.S_IFMT, g: g, mode: st.Mode & 0o7777, ino: st.Ino}
		switch w.typ {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			w.sum = contenthash.Bytes(b)
		case unix.S_IFLNK:
			if w.link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		out[rel] = w
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// visible is the target's snapshot without its limbo.
func visible(m *memtarget.Target) map[string]memtarget.Entry {
	snap := m.Snapshot()
	for p := range snap {
		if strings.HasPrefix(p, ".replfs/") {
			delete(snap, p)
		}
	}
	return snap
}

// checkMatchesBrick fails unless the target's tree is the brick's.
func checkMatchesBrick(t *testing.T, m *memtarget.Target, root string) {
	t.Helper()
	want := brickWants(t, root)
	got := visible(m)
	for p, w := range want {
		e, ok := got[p]
		if !ok {
			t.Errorf("%s: on the brick, missing on the target", p)
			continue
		}
		if e.Type != w.typ || e.GFID != w.g || (w.typ != unix.S_IFLNK && e.Mode != w.mode) || e.Sum != w.sum || e.Link != w.link {
			t.Errorf("%s: target has type %o gfid %s mode %o link %q, brick type %o gfid %s mode %o link %q (or content differs)",
				p, e.Type, e.GFID, e.Mode, e.Link, w.typ, w.g, w.mode, w.link)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: on the target, not on the brick", p)
		}
	}
	// Names of one brick inode are names of one target inode, and no two
	// brick inodes share one on the target.
	byBrick := map[uint64]uint64{}
	byTarget := map[uint64]uint64{}
	for p, w := range want {
		e, ok := got[p]
		if !ok || w.typ == unix.S_IFDIR {
			continue
		}
		if ti, seen := byBrick[w.ino]; seen && ti != e.Ino {
			t.Errorf("%s: a hard link on the brick is a separate inode on the target", p)
		}
		if bi, seen := byTarget[e.Ino]; seen && bi != w.ino {
			t.Errorf("%s: separate brick inodes share one target inode", p)
		}
		byBrick[w.ino], byTarget[e.Ino] = e.Ino, w.ino
	}
}

func newEngineSyncer(b *brickTree, m target.Target, c *counters) *syncer {
	return newSyncer(ctx, b, m, zap.NewNop(), c, 4, false)
}

func TestEngineHybridCrawlMakesTargetEqualToBrick(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, m *memtarget.Target)
	}{
		{"empty target", func(*testing.T, *memtarget.Target) {}},
		{"target with a stray file the brick does not have", func(t *testing.T, m *memtarget.Target) {
			if _, err := m.CreateFile(ctx, gfid.Root, "stray", gfid.New(), memtarget.BytesSource("stray", []byte("junk")),
				target.Attr{Mode: sIFREG | 0o600}, nil); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			b, br := newTestBrick(t, root)
			d1, d2 := gfid.New(), gfid.New()
			brickDir(t, br, "a", d1, gfid.Root)
			brickDir(t, br, "a/b", d2, d1)
			brickFile(t, br, "top.txt", gfid.New(), "top level\n", 0o644)
			brickFile(t, br, "a/data.bin", gfid.New(), strings.Repeat("0123456789", 5000), 0o600)
			brickFile(t, br, "a/b/empty", gfid.New(), "", 0o640)
			brickFile(t, br, "a/b/exec", gfid.New(), "#!/bin/sh\n", 0o755)
			brickSymlink(t, br, "a/link", gfid.New(), "../top.txt")
			brickHardLink(t, br, "a/data.bin", "a/b/hard")
			if err := os.Chmod(filepath.Join(br, "a/b"), 0o750); err != nil {
				t.Fatal(err)
			}

			m := newEngineTarget(t)
			tc.prepare(t, m)
			c := &counters{}
			if err := newEngineSyncer(b, m, c).hybrid(0); err != nil {
				t.Fatal(err)
			}
			if n := c.failures.Load(); n != 0 {
				t.Errorf("%d failures counted", n)
			}
			checkMatchesBrick(t, m, br)
		})
	}
}

// isEntryOp says whether a memtarget Ops line changes the namespace.
func isEntryOp(op string) bool {
	for _, p := range []string{"make ", "create ", "link ", "unlink ", "rmdir ", "removeall ", "rename ", "aside ", "relink ", "adopt "} {
		if strings.HasPrefix(op, p) {
			return true
		}
	}
	return false
}

func TestEngineAppliesAllEntryOpsOfABatchBeforeMetaAndData(t *testing.T) {
	root := t.TempDir()
	b, br := newTestBrick(t, root)
	d, f, e, a := gfid.New(), gfid.New(), gfid.New(), gfid.New()
	brickDir(t, br, "D", d, gfid.Root)
	brickFile(t, br, "D/f", f, "new file\n", 0o644)
	brickFile(t, br, "e", e, "changed content\n", 0o644)
	brickFile(t, br, "attr", a, "same\n", 0o600)

	m := newEngineTarget(t)
	// e and attr are on the target already, e with old content, attr
	// with another mode.
	for _, x := range []struct {
		name, content string
		g             gfid.GFID
		mode          uint32
	}{{"e", "old", e, 0o644}, {"attr", "same\n", a, 0o644}} {
		if _, err := m.CreateFile(ctx, gfid.Root, x.name, x.g, memtarget.BytesSource(x.name, []byte(x.content)),
			target.Attr{Mode: sIFREG | x.mode}, nil); err != nil {
			t.Fatal(err)
		}
	}
	before := len(m.Ops())

	recs := []journal.Record{
		{Op: journal.OpData, GFID: e},
		{Op: journal.OpSetattr, GFID: a, Mask: journal.AttrMode},
		{Op: journal.OpMkdir, GFID: d, Parent: gfid.Root, Name: "D", Mode: sIFDIR | 0o755},
		{Op: journal.OpCreate, GFID: f, Parent: d, Name: "f", Mode: sIFREG | 0o644},
		{Op: journal.OpData, GFID: f},
	}
	c := &counters{}
	if err := newEngineSyncer(b, m, c).applyRecords(recs); err != nil {
		t.Fatal(err)
	}
	if n := c.failures.Load(); n != 0 {
		t.Errorf("%d failures counted", n)
	}
	ops := m.Ops()[before:]
	lastEntry, firstOther := -1, len(ops)
	for i, op := range ops {
		if isEntryOp(op) {
			lastEntry = i
		} else if (strings.HasPrefix(op, "setmeta ") || strings.HasPrefix(op, "write ")) && i < firstOther {
			firstOther = i
		}
	}
	if lastEntry < 0 || firstOther == len(ops) {
		t.Fatalf("expected both entry and meta/data ops, got %q", ops)
	}
	if lastEntry > firstOther {
		t.Errorf("entry op %q (#%d) after meta/data op %q (#%d): %q", ops[lastEntry], lastEntry, ops[firstOther], firstOther, ops)
	}
	for _, want := range []string{"make D", "write e", "setmeta attr"} {
		if !slices.Contains(ops, want) {
			t.Errorf("ops %q lack %q", ops, want)
		}
	}
	checkMatchesBrick(t, m, br)
}

func TestEngineCountsAFailedEntryAndAppliesTheRestOfTheBatch(t *testing.T) {
	root := t.TempDir()
	b, br := newTestBrick(t, root)
	good, bad, ok2 := gfid.New(), gfid.New(), gfid.New()
	brickDir(t, br, "good", good, gfid.Root)
	brickFile(t, br, "bad", bad, "bad\n", 0o644)
	brickFile(t, br, "good/ok2", ok2, "fine\n", 0o644)

	m := newEngineTarget(t)
	m.FailEntry("bad", errors.New("injected per-entry failure"))
	var failed []string
	s := newEngineSyncer(b, m, &counters{})
	s.onFail = func(what string, g gfid.GFID, where string, err error) { failed = append(failed, where) }
	err := s.applyRecords([]journal.Record{
		{Op: journal.OpMkdir, GFID: good, Parent: gfid.Root, Name: "good"},
		{Op: journal.OpCreate, GFID: bad, Parent: gfid.Root, Name: "bad"},
		{Op: journal.OpCreate, GFID: ok2, Parent: good, Name: "ok2"},
	})
	if err != nil {
		t.Fatalf("a per-entry failure ended the batch: %v", err)
	}
	if n := s.c.failures.Load(); n != 1 {
		t.Errorf("%d failures counted (%q), want 1", n, failed)
	}
	snap := visible(m)
	if _, ok := snap["bad"]; ok {
		t.Errorf("the failing entry was made anyway")
	}
	if e, ok := snap["good/ok2"]; !ok || e.GFID != ok2 || e.Sum != contenthash.Bytes([]byte("fine\n")) {
		t.Errorf("the rest of the batch was not applied: %v", snap)
	}
	if e, ok := snap["good"]; !ok || e.GFID != good {
		t.Errorf("good was not made: %v", snap)
	}
}

func TestEngineWholeTargetFailureEndsTheBatchWithATargetError(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(m *memtarget.Target)
	}{
		{"target down", func(m *memtarget.Target) { m.SetDown(errors.New("unplugged")) }},
		{"one entry takes the target down", func(m *memtarget.Target) {
			m.FailEntry("f", target.Down(target.Unavailable, errors.New("disk gone")))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			b, br := newTestBrick(t, root)
			d, f := gfid.New(), gfid.New()
			brickDir(t, br, "D", d, gfid.Root)
			brickFile(t, br, "D/f", f, "x\n", 0o644)
			m := newEngineTarget(t)
			tc.fail(m)
			c := &counters{}
			err := newEngineSyncer(b, m, c).applyRecords([]journal.Record{
				{Op: journal.OpMkdir, GFID: d, Parent: gfid.Root, Name: "D"},
				{Op: journal.OpCreate, GFID: f, Parent: d, Name: "f"},
			})
			var te *targetError
			if !errors.As(err, &te) || !target.IsDown(err) {
				t.Fatalf("batch returned %v, want a target error", err)
			}
			if n := c.failures.Load(); n != 0 {
				t.Errorf("%d entry failures counted for a target failure", n)
			}
		})
	}
}

func TestEngineReplacesANameHoldingAnotherGFIDWithTheBricks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		onTarg func(t *testing.T, m *memtarget.Target) // makes "x" with another gfid
		onBrk  func(t *testing.T, br string) (gfid.GFID, []journal.Record)
	}{
		{"file over file", func(t *testing.T, m *memtarget.Target) {
			if _, err := m.CreateFile(ctx, gfid.Root, "x", gfid.New(), memtarget.BytesSource("x", []byte("stale")),
				target.Attr{Mode: sIFREG | 0o644}, nil); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, br string) (gfid.GFID, []journal.Record) {
			g := gfid.New()
			brickFile(t, br, "x", g, "truth\n", 0o644)
			return g, []journal.Record{{Op: journal.OpCreate, GFID: g, Parent: gfid.Root, Name: "x"}}
		}},
		{"directory over non-empty directory", func(t *testing.T, m *memtarget.Target) {
			od := gfid.New()
			if err := m.Make(ctx, gfid.Root, "x", od, target.Attr{Mode: sIFDIR | 0o755}, "", nil); err != nil {
				t.Fatal(err)
			}
			if _, err := m.CreateFile(ctx, od, "old", gfid.New(), memtarget.BytesSource("old", []byte("o")),
				target.Attr{Mode: sIFREG | 0o644}, nil); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, br string) (gfid.GFID, []journal.Record) {
			g := gfid.New()
			brickDir(t, br, "x", g, gfid.Root)
			n := gfid.New()
			brickFile(t, br, "x/new", n, "n\n", 0o644)
			return g, []journal.Record{
				{Op: journal.OpMkdir, GFID: g, Parent: gfid.Root, Name: "x"},
				{Op: journal.OpCreate, GFID: n, Parent: g, Name: "new"},
			}
		}},
		{"file over directory", func(t *testing.T, m *memtarget.Target) {
			if err := m.Make(ctx, gfid.Root, "x", gfid.New(), target.Attr{Mode: sIFDIR | 0o755}, "", nil); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, br string) (gfid.GFID, []journal.Record) {
			g := gfid.New()
			brickFile(t, br, "x", g, "file now\n", 0o644)
			return g, []journal.Record{{Op: journal.OpCreate, GFID: g, Parent: gfid.Root, Name: "x"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			b, br := newTestBrick(t, root)
			m := newEngineTarget(t)
			tc.onTarg(t, m)
			g, recs := tc.onBrk(t, br)
			c := &counters{}
			if err := newEngineSyncer(b, m, c).applyRecords(recs); err != nil {
				t.Fatal(err)
			}
			if n := c.failures.Load(); n != 0 {
				t.Errorf("%d failures counted", n)
			}
			if e := visible(m)["x"]; e.GFID != g {
				t.Errorf("target x holds gfid %s, want the brick's %s", e.GFID, g)
			}
			checkMatchesBrick(t, m, br)
		})
	}
}

func TestEngineRenamesARenamedDirectoryByGFID(t *testing.T) {
	root := t.TempDir()
	b, br := newTestBrick(t, root)
	p, d, f := gfid.New(), gfid.New(), gfid.New()
	brickDir(t, br, "P", p, gfid.Root)
	// On the brick, old (gfid d) is now P/new.
	brickDir(t, br, "P/new", d, p)
	brickFile(t, br, "P/new/f", f, "inside\n", 0o644)

	m := newEngineTarget(t)
	if err := m.Make(ctx, gfid.Root, "P", p, target.Attr{Mode: sIFDIR | 0o755}, "", nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Make(ctx, gfid.Root, "old", d, target.Attr{Mode: sIFDIR | 0o755}, "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateFile(ctx, d, "f", f, memtarget.BytesSource("f", []byte("inside\n")),
		target.Attr{Mode: sIFREG | 0o644}, nil); err != nil {
		t.Fatal(err)
	}
	before := len(m.Ops())
	c := &counters{}
	if err := newEngineSyncer(b, m, c).applyRecords([]journal.Record{
		{Op: journal.OpRename, GFID: d, Parent: gfid.Root, Name: "old", Parent2: p, Name2: "new"},
	}); err != nil {
		t.Fatal(err)
	}
	if n := c.failures.Load(); n != 0 {
		t.Errorf("%d failures counted", n)
	}
	ops := m.Ops()[before:]
	if !slices.Contains(ops, "rename old -> P/new") {
		t.Errorf("no rename old -> P/new in %q", ops)
	}
	for _, op := range ops {
		for _, bad := range []string{"rmdir ", "removeall ", "unlink ", "make ", "create ", "write "} {
			if strings.HasPrefix(op, bad) {
				t.Errorf("op %q: the renamed directory was remade or its content copied again (%q)", op, ops)
			}
		}
	}
	if e := visible(m)["P/new/f"]; e.GFID != f {
		t.Errorf("P/new/f holds %s, want %s", e.GFID, f)
	}
	checkMatchesBrick(t, m, br)
}
