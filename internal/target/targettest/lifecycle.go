package targettest

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// populate makes a small tree of every common kind, with times set, and
// commits it (Sync, SetStime).
func (f *fixture) populate() {
	f.t.Helper()
	d := f.dir(gfid.Root, "d")
	f.fileX(d, "f", []byte("content"), f.attr(unix.S_IFREG|0o640), target.Xattrs{"user.targettest.k": []byte("v")})
	sym := f.mk(d, "sym", f.attr(unix.S_IFLNK|0o777), "f", nil)
	if err := f.tg.SetMeta(f.ctx, sym, f.attr(unix.S_IFLNK|0o777), nil, target.MetaAll); err != nil {
		f.t.Fatalf("SetMeta sym: %v", err)
	}
	if hl, ok := f.tg.(target.HardLinker); ok {
		f.link(hl, f.lookupG(d, "f"), gfid.Root, "f-link")
	}
	for _, g := range []gfid.GFID{d, gfid.Root} {
		if err := f.tg.SetMeta(f.ctx, g, f.attr(unix.S_IFDIR|0o755), nil, target.MetaAll); err != nil {
			f.t.Fatalf("SetMeta of a directory: %v", err)
		}
	}
	f.commit()
}

func (f *fixture) commit() {
	f.t.Helper()
	if err := f.tg.Sync(f.ctx); err != nil {
		f.t.Fatalf("Sync: %v", err)
	}
	if err := f.tg.SetStime(f.ctx, time.Unix(0, f.when)); err != nil {
		f.t.Fatalf("SetStime: %v", err)
	}
}

// lookupG is the gfid of parent/name.
func (f *fixture) lookupG(parent gfid.GFID, name string) gfid.GFID {
	f.t.Helper()
	g, _, found, err := f.tg.Lookup(f.ctx, parent, name)
	if err != nil || !found {
		f.t.Fatalf("Lookup %s: found %v, %v", name, found, err)
	}
	return g
}

func testReopen(t *testing.T, f *fixture) {
	f.open()
	f.populate()
	before := tree(t, f.ctx, f.tg, true)
	if err := f.tg.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	again := f.reopen(true)
	sameTree(t, "after a reopen", before, tree(t, f.ctx, again, true))
	if err := again.Open(f.ctx, f.h.BrickID); err != nil {
		t.Fatalf("Open of the reopened target: %v", err)
	}
	if err := again.Make(f.ctx, gfid.Root, "after", gfid.New(), f.attr(unix.S_IFDIR|0o755), "", nil); err != nil {
		t.Errorf("Make through the reopened target: %v", err)
	}
}

func testAttachChangesNothing(t *testing.T, f *fixture) {
	f.open()
	f.populate()
	before := tree(t, f.ctx, f.tg, true)
	other := f.tg
	if f.h.Reopen != nil {
		other = f.reopen(true) // a fresh handle: what verify gets
	} else if err := other.Attach(f.ctx, f.h.BrickID); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if err := other.Attach(f.ctx, f.h.BrickID); err != nil {
		t.Fatalf("a second Attach: %v", err)
	}
	sameTree(t, "after Attach, read through the attached handle", before, tree(t, f.ctx, other, true))
	sameTree(t, "after Attach, read through the first handle", before, tree(t, f.ctx, f.tg, true))
}

func testOtherBrick(t *testing.T, f *fixture) {
	f.open()
	x := f.file(gfid.Root, "x", "x")
	f.commit()
	other := gfid.New().String()
	wantErr(t, "Open for another brick", f.tg.Open(f.ctx, other), target.ErrOtherBrick)
	wantErr(t, "Attach for another brick", f.tg.Attach(f.ctx, other), target.ErrOtherBrick)
	if f.h.Reopen != nil {
		tg := f.h.Reopen(t)
		t.Cleanup(func() { tg.Close() })
		wantErr(t, "Open of a reopened target for another brick", tg.Open(f.ctx, other), target.ErrOtherBrick)
		wantErr(t, "Attach of a reopened target for another brick", tg.Attach(f.ctx, other), target.ErrOtherBrick)
		if err := tg.Open(f.ctx, f.h.BrickID); err != nil {
			t.Errorf("Open for its own brick after refusing another: %v", err)
		}
	}
	if err := f.tg.Open(f.ctx, f.h.BrickID); err != nil {
		t.Fatalf("Open for its own brick after refusing another: %v", err)
	}
	f.lookup(gfid.Root, "x", x)
	f.names("the root", f.list(gfid.Root), "x")
}

func testUnavailable(t *testing.T, f *fixture) {
	f.open()
	if err := f.tg.Check(f.ctx); err != nil {
		t.Fatalf("Check of an available target: %v", err)
	}
	f.h.MakeUnavailable(t)
	err := f.tg.Check(f.ctx)
	if err == nil || !target.IsDown(err) {
		t.Errorf("Check of an unavailable target: %v; want an error for which target.IsDown holds", err)
	}
}

// call is one call of the interface, for the cases that try them all.
type call struct {
	name string
	do   func(ctx context.Context) error
}

func testCancelled(t *testing.T, f *fixture) {
	f.open()
	d := f.dir(gfid.Root, "d")
	x := f.file(d, "x", "x")
	before := tree(t, f.ctx, f.tg, true)
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	for _, c := range append(coreCalls(f, d, x), capabilityCalls(f, d, x)...) {
		if err := c.do(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v; want context.Canceled", c.name, err)
		}
	}
	sameTree(t, "after calls with a cancelled context", before, tree(t, f.ctx, f.tg, true))
}

func coreCalls(f *fixture, d, x gfid.GFID) []call {
	reg, dir := f.attr(unix.S_IFREG|0o600), f.attr(unix.S_IFDIR|0o700)
	src := bytesSource("new", []byte("new"))
	tg, b := f.tg, f.h.BrickID
	return []call{
		{"Open", func(ctx context.Context) error { return tg.Open(ctx, b) }},
		{"Attach", func(ctx context.Context) error { return tg.Attach(ctx, b) }},
		{"Check", func(ctx context.Context) error { return tg.Check(ctx) }},
		{"Lookup", func(ctx context.Context) error { _, _, _, err := tg.Lookup(ctx, d, "x"); return err }},
		{"Stat", func(ctx context.Context) error { _, err := tg.Stat(ctx, x); return err }},
		{"ReadDir", func(ctx context.Context) error { _, err := tg.ReadDir(ctx, d); return err }},
		{"Xattrs", func(ctx context.Context) error { _, err := tg.Xattrs(ctx, x); return err }},
		{"Where", func(ctx context.Context) error { _, _, err := tg.Where(ctx, d); return err }},
		{"Make", func(ctx context.Context) error { return tg.Make(ctx, d, "new", gfid.New(), dir, "", nil) }},
		{"CreateFile", func(ctx context.Context) error {
			_, err := tg.CreateFile(ctx, d, "new", gfid.New(), src, reg, nil)
			return err
		}},
		{"WriteFile", func(ctx context.Context) error { _, err := tg.WriteFile(ctx, x, src, reg, nil); return err }},
		{"Unlink", func(ctx context.Context) error { return tg.Unlink(ctx, d, "x", x) }},
		{"Rmdir", func(ctx context.Context) error { return tg.Rmdir(ctx, gfid.Root, "d", d) }},
		{"Rename", func(ctx context.Context) error { return tg.Rename(ctx, x, d, "x", gfid.Root, "y") }},
		{"Aside", func(ctx context.Context) error { return tg.Aside(ctx, d, "x", x) }},
		{"EmptyLimbo", func(ctx context.Context) error { _, err := tg.EmptyLimbo(ctx); return err }},
		{"SetMeta", func(ctx context.Context) error { return tg.SetMeta(ctx, x, reg, nil, target.MetaAll) }},
		{"List", func(ctx context.Context) error { _, err := tg.List(ctx, d, big); return err }},
		{"LookupFull", func(ctx context.Context) error { _, _, err := tg.LookupFull(ctx, d, "x"); return err }},
		{"Sync", func(ctx context.Context) error { return tg.Sync(ctx) }},
		{"SetStime", func(ctx context.Context) error { return tg.SetStime(ctx, time.Now()) }},
	}
}

// capabilityCalls are the calls of the optional interfaces tg has.
func capabilityCalls(f *fixture, d, x gfid.GFID) []call {
	var out []call
	if hl, ok := f.tg.(target.HardLinker); ok {
		out = append(out,
			call{"Link", func(ctx context.Context) error { return hl.Link(ctx, x, gfid.Root, "l") }},
			call{"Relink", func(ctx context.Context) error { return hl.Relink(ctx, x, d, "x") }},
			call{"Parents", func(ctx context.Context) error { _, err := hl.Parents(ctx, x); return err }})
	}
	if ir, ok := f.tg.(target.IndexRepairer); ok {
		out = append(out,
			call{"Adopt", func(ctx context.Context) error { return ir.Adopt(ctx, d, "x", x) }},
			call{"Repoint", func(ctx context.Context) error { return ir.Repoint(ctx, d, gfid.Root, "d") }})
	}
	if h, ok := f.tg.(target.Hasher); ok {
		out = append(out,
			call{"Hash", func(ctx context.Context) error { _, _, err := h.Hash(ctx, x, -1); return err }},
			call{"HashDir", func(ctx context.Context) error {
				return h.HashDir(ctx, d, []target.HashReq{{Name: "x", Size: -1}})
			}})
	}
	if tr, ok := f.tg.(target.TreeRemover); ok {
		out = append(out, call{"RemoveAll", func(ctx context.Context) error { return tr.RemoveAll(ctx, gfid.Root, "d", d) }})
	}
	return out
}
