package targettest

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

func testTakenName(t *testing.T, f *fixture) {
	f.open()
	d := f.dir(gfid.Root, "d")
	x := f.file(d, "x", "old")
	y := f.file(d, "y", "why")
	fresh := gfid.New()
	reg, dir := f.attr(unix.S_IFREG|0o644), f.attr(unix.S_IFDIR|0o755)
	wantErr(t, "Make of a file over a file", f.tg.Make(f.ctx, d, "x", fresh, reg, "", nil), target.ErrExist)
	wantErr(t, "Make of a directory over a file", f.tg.Make(f.ctx, d, "x", fresh, dir, "", nil), target.ErrExist)
	wantErr(t, "Make of a file over a directory", f.tg.Make(f.ctx, gfid.Root, "d", fresh, reg, "", nil), target.ErrExist)
	wantErr(t, "Make of the gfid the name holds", f.tg.Make(f.ctx, d, "x", x, reg, "", nil), target.ErrExist)
	_, err := f.tg.CreateFile(f.ctx, d, "x", fresh, bytesSource("new", []byte("new")), reg, nil)
	wantErr(t, "CreateFile over a file", err, target.ErrExist)
	wantErr(t, "Rename over a file", f.tg.Rename(f.ctx, y, d, "y", d, "x"), target.ErrExist)
	wantErr(t, "Rename over a directory", f.tg.Rename(f.ctx, y, d, "y", gfid.Root, "d"), target.ErrExist)

	l := f.list(d)
	f.names("d", l, "x", "y")
	if l["x"].GFID != x || l["y"].GFID != y {
		t.Errorf("d/x and d/y hold %s and %s, want %s and %s", l["x"].GFID, l["y"].GFID, x, y)
	}
	f.content("d/x", l["x"], []byte("old"))
	f.content("d/y", l["y"], []byte("why"))
	f.gone(fresh, "the refused new entry")
}

func testOtherGFID(t *testing.T, f *fixture) {
	f.open()
	d := f.dir(gfid.Root, "d")
	x := f.file(d, "x", "x")
	s := f.dir(d, "s")
	other := gfid.New()
	wantErr(t, "Unlink naming another gfid", f.tg.Unlink(f.ctx, d, "x", other), target.ErrExist)
	wantErr(t, "Rmdir naming another gfid", f.tg.Rmdir(f.ctx, d, "s", other), target.ErrExist)
	wantErr(t, "Rename naming another gfid", f.tg.Rename(f.ctx, other, d, "x", d, "z"), target.ErrExist)
	wantErr(t, "Aside naming another gfid", f.tg.Aside(f.ctx, d, "x", other), target.ErrExist)
	wantErr(t, "Unlink of a directory naming a file's gfid", f.tg.Unlink(f.ctx, d, "s", x), target.ErrExist)
	if tr, ok := f.tg.(target.TreeRemover); ok {
		wantErr(t, "RemoveAll naming another gfid", tr.RemoveAll(f.ctx, d, "s", other), target.ErrExist)
	}
	l := f.list(d)
	f.names("d", l, "s", "x")
	if l["x"].GFID != x || l["s"].GFID != s {
		t.Errorf("d/x and d/s hold %s and %s, want %s and %s", l["x"].GFID, l["s"].GFID, x, s)
	}
	f.names("limbo", listOf(t, f.ctx, f.tg, target.Limbo))
}

func testRemoveAbsent(t *testing.T, f *fixture) {
	f.open()
	d := f.dir(gfid.Root, "d")
	keep := f.file(d, "keep", "keep")
	g := gfid.New()
	wantErr(t, "Unlink of a missing name", f.tg.Unlink(f.ctx, d, "nope", g), target.ErrNotExist)
	wantErr(t, "Rmdir of a missing name", f.tg.Rmdir(f.ctx, d, "nope", g), target.ErrNotExist)
	wantErr(t, "Rename of a missing name", f.tg.Rename(f.ctx, g, d, "nope", d, "other"), target.ErrNotExist)
	wantErr(t, "Aside of a missing name", f.tg.Aside(f.ctx, d, "nope", g), target.ErrNotExist)
	f.absent(d, "other")
	f.lookup(d, "keep", keep)
}

func testNonEmptyDir(t *testing.T, f *fixture) {
	f.open()
	d := f.dir(gfid.Root, "d")
	x := f.file(d, "x", "x")
	if err := f.tg.Rmdir(f.ctx, gfid.Root, "d", d); err == nil {
		t.Errorf("Rmdir of a directory holding a file succeeded")
	}
	if err := f.tg.Unlink(f.ctx, gfid.Root, "d", d); err == nil {
		t.Errorf("Unlink of a directory succeeded")
	}
	f.lookup(gfid.Root, "d", d)
	f.lookup(d, "x", x)
	f.content("d/x", f.list(d)["x"], []byte("x"))
}

func testRemove(t *testing.T, f *fixture) {
	f.open()
	d := f.dir(gfid.Root, "d")
	x := f.file(d, "x", "x")
	sym := f.mk(d, "sym", f.attr(unix.S_IFLNK|0o777), "x", nil)
	e := f.dir(d, "e")
	if err := f.tg.Unlink(f.ctx, d, "x", x); err != nil {
		t.Fatalf("Unlink of a file: %v", err)
	}
	if err := f.tg.Unlink(f.ctx, d, "sym", sym); err != nil {
		t.Fatalf("Unlink of a symlink: %v", err)
	}
	if err := f.tg.Rmdir(f.ctx, d, "e", e); err != nil {
		t.Fatalf("Rmdir of an empty directory: %v", err)
	}
	f.names("d", f.list(d))
	f.gone(x, "d/x")
	f.gone(sym, "d/sym")
	f.gone(e, "d/e")
	if err := f.tg.Rmdir(f.ctx, gfid.Root, "d", d); err != nil {
		t.Fatalf("Rmdir of a directory emptied: %v", err)
	}
	f.gone(d, "d")
	f.names("the root", f.list(gfid.Root))
}

func testInvalidNames(t *testing.T, f *fixture) {
	f.open()
	d := f.dir(gfid.Root, "d")
	x := f.file(gfid.Root, "x", "x")
	before := tree(t, f.ctx, f.tg, false)
	bad := []struct {
		parent gfid.GFID
		name   string
	}{
		{gfid.Root, ""}, {gfid.Root, "."}, {gfid.Root, ".."}, {gfid.Root, "a/b"}, {gfid.Root, "a\x00b"},
		{gfid.Root, gfid.StateDir}, {d, ""}, {d, "."}, {d, ".."}, {d, "a/b"}, {d, "/abs"},
	}
	var tried []gfid.GFID
	for _, b := range bad {
		for _, mode := range []uint32{unix.S_IFREG | 0o644, unix.S_IFDIR | 0o755} {
			g := gfid.New()
			tried = append(tried, g)
			if err := f.tg.Make(f.ctx, b.parent, b.name, g, f.attr(mode), "", nil); err == nil {
				t.Errorf("Make of %q (mode %o) succeeded", b.name, mode)
			}
		}
		g := gfid.New()
		tried = append(tried, g)
		if _, err := f.tg.CreateFile(f.ctx, b.parent, b.name, g, bytesSource("c", []byte("c")), f.attr(unix.S_IFREG|0o644), nil); err == nil {
			t.Errorf("CreateFile of %q succeeded", b.name)
		}
		if err := f.tg.Rename(f.ctx, x, gfid.Root, "x", b.parent, b.name); err == nil {
			t.Errorf("Rename of x to %q succeeded", b.name)
			f.t.FailNow() // x has moved: the rest would test nothing
		}
		if hl, ok := f.tg.(target.HardLinker); ok {
			if err := hl.Link(f.ctx, x, b.parent, b.name); err == nil {
				t.Errorf("Link of x as %q succeeded", b.name)
			}
		}
	}
	sameTree(t, "after invalid names", before, tree(t, f.ctx, f.tg, false))
	for _, g := range tried {
		f.gone(g, "a refused entry")
	}
}
