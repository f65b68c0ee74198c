package targettest

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// link adds parent/name to g (HardLinker).
func (f *fixture) link(hl target.HardLinker, g, parent gfid.GFID, name string) {
	f.t.Helper()
	if err := hl.Link(f.ctx, g, parent, name); err != nil {
		f.t.Fatalf("Link %s: %v", name, err)
	}
}

// parents checks Parents(g) against want, in any order.
func (f *fixture) parents(hl target.HardLinker, g gfid.GFID, want ...gfid.GFID) {
	f.t.Helper()
	got, err := hl.Parents(f.ctx, g)
	less := func(a, b gfid.GFID) int { return slices.Compare(a[:], b[:]) }
	slices.SortFunc(got, less)
	slices.SortFunc(want, less)
	if err != nil || !slices.Equal(got, want) {
		f.t.Errorf("Parents %s: %v, %v; want %v", g, got, err, want)
	}
}

func testHardLinks(t *testing.T, f *fixture) {
	hl := capability[target.HardLinker](t, f.tg)
	f.open()
	a := f.dir(gfid.Root, "a")
	b := f.dir(gfid.Root, "b")
	g := f.file(a, "f", "old content")
	f.link(hl, g, b, "f2")
	f.link(hl, g, gfid.Root, "f3")
	f.link(hl, g, a, "f4")
	wantErr(t, "Link onto a taken name", hl.Link(f.ctx, g, b, "f2"), target.ErrExist)
	wantErr(t, "Link of an unknown gfid", hl.Link(f.ctx, gfid.New(), b, "nope"), target.ErrNotExist)
	if err := hl.Link(f.ctx, a, gfid.Root, "alink"); err == nil {
		t.Errorf("Link of a directory succeeded")
	}
	f.absent(gfid.Root, "alink")
	names := []struct {
		dir  gfid.GFID
		name string
	}{{a, "f"}, {b, "f2"}, {gfid.Root, "f3"}, {a, "f4"}}
	ino := f.lookup(a, "f", g).Ino
	for _, n := range names {
		if at := f.lookup(n.dir, n.name, g); at.Nlink != 4 || at.Ino != ino {
			t.Errorf("%s: nlink %d ino %d, want 4 names of inode %d", n.name, at.Nlink, at.Ino, ino)
		}
	}
	if st, err := f.tg.Stat(f.ctx, g); err != nil || st.Nlink != 4 {
		t.Errorf("Stat of a file with 4 names: nlink %d, %v", st.Nlink, err)
	}
	f.parents(hl, g, a, b, gfid.Root)

	content := []byte("new content, for every name at once")
	w := f.attr(unix.S_IFREG | 0o600)
	w.Size = int64(len(content))
	if _, err := f.tg.WriteFile(f.ctx, g, bytesSource("new", content), w, nil); err != nil {
		t.Fatalf("WriteFile of a hard-linked file: %v", err)
	}
	for _, n := range names {
		f.lookup(n.dir, n.name, g)
		f.content(n.name+" after WriteFile", f.list(n.dir)[n.name], content)
	}
	if err := f.tg.Unlink(f.ctx, b, "f2", g); err != nil {
		t.Fatalf("Unlink of one name: %v", err)
	}
	if st, err := f.tg.Stat(f.ctx, g); err != nil || st.Nlink != 3 {
		t.Errorf("Stat after unlinking one of 4 names: nlink %d, %v", st.Nlink, err)
	}
	f.parents(hl, g, a, gfid.Root)
	f.content("f3 after unlinking f2", f.list(gfid.Root)["f3"], content)
	if ps, err := hl.Parents(f.ctx, gfid.New()); err != nil || len(ps) != 0 {
		t.Errorf("Parents of an unknown gfid: %v, %v; want none", ps, err)
	}
}

func testLinkInLimbo(t *testing.T, f *fixture) {
	hl := capability[target.HardLinker](t, f.tg)
	f.open()
	d := f.dir(gfid.Root, "d")
	g := f.file(d, "x", "linked")
	f.link(hl, g, gfid.Root, "x2")
	if err := f.tg.Aside(f.ctx, d, "x", g); err != nil {
		t.Fatalf("Aside d/x: %v", err)
	}
	f.parents(hl, g, gfid.Root) // limbo is no parent the engine could write to
	if n, err := f.tg.EmptyLimbo(f.ctx); err != nil || n != 1 {
		t.Errorf("EmptyLimbo: %d, %v; want 1", n, err)
	}
	if at := f.lookup(gfid.Root, "x2", g); at.Nlink != 1 {
		t.Errorf("x2 after its other name was emptied from limbo: nlink %d, want 1", at.Nlink)
	}
	f.content("x2", f.list(gfid.Root)["x2"], []byte("linked"))
	f.parents(hl, g, gfid.Root)
}

func testRemoveAll(t *testing.T, f *fixture) {
	tr := capability[target.TreeRemover](t, f.tg)
	f.open()
	d := f.dir(gfid.Root, "d")
	s := f.dir(d, "s")
	x := f.file(d, "x", "x")
	y := f.file(s, "y", "y")
	keep := f.file(gfid.Root, "keep", "keep")
	if err := tr.RemoveAll(f.ctx, gfid.Root, "d", d); err != nil {
		t.Fatalf("RemoveAll d: %v", err)
	}
	f.absent(gfid.Root, "d")
	for g, what := range map[gfid.GFID]string{d: "d", s: "d/s", x: "d/x", y: "d/s/y"} {
		f.gone(g, what)
	}
	f.names("the root", f.list(gfid.Root), "keep")
	f.lookup(gfid.Root, "keep", keep)
}

func testIndexRepairer(t *testing.T, f *fixture) {
	ir := capability[target.IndexRepairer](t, f.tg)
	f.open()
	d := f.dir(gfid.Root, "d")
	x := f.file(d, "x", "x")
	// Adopting rewrites index entries: only ctimes may change.
	before := tree(t, f.ctx, f.tg, false)
	if err := ir.Adopt(f.ctx, d, "x", x); err != nil {
		t.Errorf("Adopt of an indexed file: %v", err)
	}
	if err := ir.Repoint(f.ctx, d, gfid.Root, "d"); err != nil {
		t.Errorf("Repoint of a directory whose entry is right: %v", err)
	}
	sameTree(t, "after Adopt and Repoint", before, tree(t, f.ctx, f.tg, false))
	f.where(d, gfid.Root, "d")
	if _, err := f.tg.Stat(f.ctx, x); err != nil {
		t.Errorf("Stat after Adopt: %v", err)
	}
	wantErr(t, "Adopt naming another gfid", ir.Adopt(f.ctx, d, "x", gfid.New()), target.ErrExist)
	if err := ir.Repoint(f.ctx, x, d, "x"); err == nil {
		t.Errorf("Repoint of a file succeeded")
	}
}
