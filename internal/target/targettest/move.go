package targettest

import (
	"testing"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// where checks that directory g is parent/name.
func (f *fixture) where(g, parent gfid.GFID, name string) {
	f.t.Helper()
	p, n, err := f.tg.Where(f.ctx, g)
	if err != nil || p != parent || n != name {
		f.t.Errorf("Where %s: %s %q, %v; want %s %q", g, p, n, err, parent, name)
	}
}

func testRenameSubtree(t *testing.T, f *fixture) {
	f.open()
	a := f.dir(gfid.Root, "a")
	b := f.dir(gfid.Root, "b")
	c := f.dir(a, "c")
	fc := f.file(c, "f", "deep content")
	g := f.file(a, "g", "shallow")
	if err := f.tg.Rename(f.ctx, a, gfid.Root, "a", b, "a2"); err != nil {
		t.Fatalf("Rename a -> b/a2: %v", err)
	}
	f.absent(gfid.Root, "a")
	f.lookup(b, "a2", a)
	f.where(a, b, "a2")
	f.where(c, a, "c")
	if st, err := f.tg.Stat(f.ctx, fc); err != nil || st.Size != int64(len("deep content")) {
		t.Errorf("Stat of b/a2/c/f by gfid: %+v, %v", st, err)
	}
	la := f.list(a)
	f.names("b/a2", la, "c", "g")
	if la["c"].GFID != c || la["g"].GFID != g {
		t.Errorf("b/a2 lists c %s and g %s, want %s and %s", la["c"].GFID, la["g"].GFID, c, g)
	}
	f.content("b/a2/c/f", f.list(c)["f"], []byte("deep content"))

	if err := f.tg.Rename(f.ctx, fc, c, "f", gfid.Root, "f2"); err != nil {
		t.Fatalf("Rename of a file to another directory: %v", err)
	}
	f.absent(c, "f")
	f.content("f2", f.list(gfid.Root)["f2"], []byte("deep content"))
	if err := f.tg.Rename(f.ctx, c, a, "c", a, "c2"); err != nil {
		t.Fatalf("Rename within a directory: %v", err)
	}
	f.where(c, a, "c2")
	f.names("the root", f.list(gfid.Root), "b", "f2")
}

func testRenameIntoItself(t *testing.T, f *fixture) {
	f.open()
	a := f.dir(gfid.Root, "a")
	c := f.dir(a, "c")
	if err := f.tg.Rename(f.ctx, a, gfid.Root, "a", c, "a"); err == nil {
		t.Errorf("Rename of a into its own child a/c succeeded")
	}
	if err := f.tg.Rename(f.ctx, a, gfid.Root, "a", a, "self"); err == nil {
		t.Errorf("Rename of a into itself succeeded")
	}
	f.where(a, gfid.Root, "a")
	f.where(c, a, "c")
	f.names("a/c", f.list(c))
	f.names("a", f.list(a), "c")
}

func testAsideAndBack(t *testing.T, f *fixture) {
	f.open()
	d := f.dir(gfid.Root, "d")
	s := f.dir(d, "s")
	inner := f.file(s, "inner", "inner")
	x := f.file(d, "x", "x content")
	if err := f.tg.Aside(f.ctx, d, "x", x); err != nil {
		t.Fatalf("Aside d/x: %v", err)
	}
	if err := f.tg.Aside(f.ctx, d, "s", s); err != nil {
		t.Fatalf("Aside d/s: %v", err)
	}
	f.absent(d, "x")
	f.absent(d, "s")
	if _, err := f.tg.Stat(f.ctx, x); err != nil {
		t.Errorf("Stat of a file in limbo: %v", err)
	}
	limbo := listOf(t, f.ctx, f.tg, target.Limbo)
	f.names("limbo", limbo, x.String(), s.String())
	if limbo[x.String()].GFID != x || limbo[s.String()].GFID != s {
		t.Errorf("limbo holds %s and %s, want %s and %s", limbo[x.String()].GFID, limbo[s.String()].GFID, x, s)
	}
	f.lookup(target.Limbo, x.String(), x)
	f.where(s, target.Limbo, s.String())
	f.where(d, gfid.Root, "d")

	if err := f.tg.Rename(f.ctx, x, target.Limbo, x.String(), gfid.Root, "x-back"); err != nil {
		t.Fatalf("Rename of a file out of limbo: %v", err)
	}
	if err := f.tg.Rename(f.ctx, s, target.Limbo, s.String(), gfid.Root, "s-back"); err != nil {
		t.Fatalf("Rename of a directory out of limbo: %v", err)
	}
	root := f.list(gfid.Root)
	f.names("the root", root, "d", "s-back", "x-back")
	f.content("x-back", root["x-back"], []byte("x content"))
	f.where(s, gfid.Root, "s-back")
	ls := f.list(s)
	f.names("s-back", ls, "inner")
	if ls["inner"].GFID != inner {
		t.Errorf("s-back/inner is %s, want %s", ls["inner"].GFID, inner)
	}
	f.names("limbo", listOf(t, f.ctx, f.tg, target.Limbo))
}

func testEmptyLimbo(t *testing.T, f *fixture) {
	f.open()
	d := f.dir(gfid.Root, "d")
	s := f.dir(d, "s")
	sub := f.dir(s, "sub")
	inner := f.file(sub, "inner", "inner")
	x := f.file(d, "x", "x")
	keep := f.file(d, "keep", "keep")
	for _, e := range []struct {
		name string
		g    gfid.GFID
	}{{"x", x}, {"s", s}} {
		if err := f.tg.Aside(f.ctx, d, e.name, e.g); err != nil {
			t.Fatalf("Aside d/%s: %v", e.name, err)
		}
	}
	n, err := f.tg.EmptyLimbo(f.ctx)
	if err != nil || n != 2 {
		t.Errorf("EmptyLimbo: %d, %v; want 2 entries removed", n, err)
	}
	for g, what := range map[gfid.GFID]string{x: "x", s: "s", sub: "s/sub", inner: "s/sub/inner"} {
		f.gone(g, what+", emptied from limbo")
	}
	f.names("limbo", listOf(t, f.ctx, f.tg, target.Limbo))
	if n, err := f.tg.EmptyLimbo(f.ctx); err != nil || n != 0 {
		t.Errorf("EmptyLimbo of an empty limbo: %d, %v; want 0", n, err)
	}
	f.names("d", f.list(d), "keep")
	f.lookup(d, "keep", keep)
	f.names("the root", f.list(gfid.Root), "d")
}
