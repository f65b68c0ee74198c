package targettest

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// escapePointer is a directory pointer that names the root's parent:
// "the entry '..' of the root".
const escapePointer = "../../00/00/00000000-0000-0000-0000-000000000001/.."

// runEscapes damages fresh targets behind their backs, then drives them
// through the calls the damage could misdirect. A call may fail or do
// its work inside the tree; the snapshot of Outside, compared when each
// case ends, says whether anything outside was read into the tree,
// changed, made or removed.
func runEscapes(t *testing.T, probe Harness, newTarget func(t *testing.T) Harness) {
	tp := probe.Tamper
	escapes := []struct {
		name string
		can  bool
		run  func(t *testing.T, f *fixture)
	}{
		{"a directory replaced by a symlink to outside leads nowhere", tp.ReplaceDirWithSymlink != nil, escapeDirSymlink},
		{"a limbo that is a symlink to outside is not followed", tp.ReplaceStateDirWithSymlink != nil, escapeLimbo},
		{"a tmp directory that is a symlink to outside is not followed", tp.ReplaceStateDirWithSymlink != nil, escapeTmp},
		{"a gfid index that is a symlink to outside is not followed", tp.ReplaceStateDirWithSymlink != nil, escapeIndex},
		{"a directory pointer that climbs out of the root leads nowhere", tp.RewritePointer != nil, escapeClimb},
	}
	for _, e := range escapes {
		if !e.can {
			continue
		}
		t.Run(e.name, func(t *testing.T) {
			f := newFixture(t, newTarget)
			if f.h.Tamper == nil || f.h.Outside == "" {
				t.Fatalf("the harness gave Tamper and Outside once, not every time")
			}
			f.open()
			e.run(t, f)
		})
	}
}

// attempt makes every call of calls on the fixture's handle, then on a
// reopened one (a restart finds the damage, with no cached paths), Open
// included. Errors are expected, and logged.
func (f *fixture) attempt(calls func(tg target.Target) []call) {
	f.t.Helper()
	run := func(how string, tg target.Target) {
		for _, c := range calls(tg) {
			if err := c.do(f.ctx); err != nil {
				f.t.Logf("%s: %s: %v", how, c.name, err)
			}
		}
	}
	run("same handle", f.tg)
	if f.h.Reopen == nil {
		return
	}
	tg := f.h.Reopen(f.t)
	f.t.Cleanup(func() { tg.Close() })
	if err := tg.Open(f.ctx, f.h.BrickID); err != nil {
		f.t.Logf("reopened: Open: %v", err)
		return
	}
	run("reopened", tg)
}

// noBait is a call listing dir that fails the test if the listing shows
// what lies outside.
func (f *fixture) noBait(tg target.Target, dir gfid.GFID) call {
	return call{"List", func(ctx context.Context) error {
		es, err := tg.List(ctx, dir, big)
		for _, e := range es {
			if e.Name == "victim" || e.Name == "victimdir" || e.Name == "victimtree" {
				f.t.Errorf("List of a directory of the target lists %s, which lies outside it", e.Name)
			}
		}
		return err
	}}
}

func (f *fixture) src() target.Source {
	return bytesSource("escape", []byte("written by an escape case\n"))
}

func escapeDirSymlink(t *testing.T, f *fixture) {
	d := f.dir(gfid.Root, "d")
	fd := f.file(d, "f", "f")
	s := f.dir(d, "s")
	x := f.file(gfid.Root, "x", "x")
	f.h.Tamper.ReplaceDirWithSymlink(t, "d", f.h.Outside)
	reg, dir := f.attr(unix.S_IFREG|0o666), f.attr(unix.S_IFDIR|0o777)
	xa := target.Xattrs{"user.targettest.escaped": []byte("yes")}
	f.attempt(func(tg target.Target) []call {
		return append([]call{
			f.noBait(tg, d),
			{"Unlink", func(ctx context.Context) error { return tg.Unlink(ctx, d, "victim", victimFile) }},
			{"Rmdir", func(ctx context.Context) error { return tg.Rmdir(ctx, d, "victimdir", victimDir) }},
			{"Make", func(ctx context.Context) error { return tg.Make(ctx, d, "made", gfid.New(), reg, "", nil) }},
			{"Make dir", func(ctx context.Context) error { return tg.Make(ctx, d, "madedir", gfid.New(), dir, "", nil) }},
			{"CreateFile", func(ctx context.Context) error {
				_, err := tg.CreateFile(ctx, d, "created", gfid.New(), f.src(), reg, nil)
				return err
			}},
			{"SetMeta", func(ctx context.Context) error { return tg.SetMeta(ctx, d, dir, xa, target.MetaAll) }},
			{"SetMeta below", func(ctx context.Context) error { return tg.SetMeta(ctx, s, dir, xa, target.MetaAll) }},
			{"Rename out", func(ctx context.Context) error { return tg.Rename(ctx, fd, d, "f", gfid.Root, "f-out") }},
			{"Rename bait out", func(ctx context.Context) error {
				return tg.Rename(ctx, victimFile, d, "victim", gfid.Root, "stolen")
			}},
			{"Rename in", func(ctx context.Context) error { return tg.Rename(ctx, x, gfid.Root, "x", d, "x-in") }},
			{"Aside", func(ctx context.Context) error { return tg.Aside(ctx, d, "victim", victimFile) }},
			{"WriteFile", func(ctx context.Context) error { _, err := tg.WriteFile(ctx, fd, f.src(), reg, xa); return err }},
			{"EmptyLimbo", func(ctx context.Context) error { _, err := tg.EmptyLimbo(ctx); return err }},
		}, capabilityEscapes(tg, d, fd)...)
	})
}

// capabilityEscapes are the optional calls that act on names in dir.
func capabilityEscapes(tg target.Target, dir, file gfid.GFID) []call {
	var out []call
	if tr, ok := tg.(target.TreeRemover); ok {
		out = append(out, call{"RemoveAll", func(ctx context.Context) error {
			return tr.RemoveAll(ctx, dir, "victimtree", victimTree)
		}})
	}
	if hl, ok := tg.(target.HardLinker); ok {
		out = append(out,
			call{"Link", func(ctx context.Context) error { return hl.Link(ctx, file, dir, "linked") }},
			call{"Relink", func(ctx context.Context) error { return hl.Relink(ctx, victimFile, dir, "victim") }})
	}
	if ir, ok := tg.(target.IndexRepairer); ok {
		out = append(out,
			call{"Adopt", func(ctx context.Context) error { return ir.Adopt(ctx, dir, "victim", victimFile) }},
			call{"Repoint", func(ctx context.Context) error { return ir.Repoint(ctx, victimDir, dir, "victimdir") }})
	}
	return out
}

func escapeLimbo(t *testing.T, f *fixture) {
	x := f.file(gfid.Root, "x", "x")
	dd := f.dir(gfid.Root, "dd")
	f.file(dd, "child", "child")
	f.h.Tamper.ReplaceStateDirWithSymlink(t, LimboDir, f.h.Outside)
	reg := f.attr(unix.S_IFREG | 0o666)
	f.attempt(func(tg target.Target) []call {
		return []call{
			f.noBait(tg, target.Limbo),
			{"Aside", func(ctx context.Context) error { return tg.Aside(ctx, gfid.Root, "x", x) }},
			{"Aside dir", func(ctx context.Context) error { return tg.Aside(ctx, gfid.Root, "dd", dd) }},
			{"Rename back", func(ctx context.Context) error {
				return tg.Rename(ctx, x, target.Limbo, x.String(), gfid.Root, "back")
			}},
			{"Rename bait out", func(ctx context.Context) error {
				return tg.Rename(ctx, victimFile, target.Limbo, "victim", gfid.Root, "stolen")
			}},
			{"Unlink", func(ctx context.Context) error { return tg.Unlink(ctx, target.Limbo, "victim", victimFile) }},
			{"Rmdir", func(ctx context.Context) error { return tg.Rmdir(ctx, target.Limbo, "victimdir", victimDir) }},
			{"Make", func(ctx context.Context) error { return tg.Make(ctx, target.Limbo, "made", gfid.New(), reg, "", nil) }},
			{"EmptyLimbo", func(ctx context.Context) error { _, err := tg.EmptyLimbo(ctx); return err }},
		}
	})
}

func escapeTmp(t *testing.T, f *fixture) {
	fx := f.file(gfid.Root, "fx", "old")
	f.h.Tamper.ReplaceStateDirWithSymlink(t, TmpDir, f.h.Outside)
	reg := f.attr(unix.S_IFREG | 0o666)
	f.attempt(func(tg target.Target) []call {
		calls := []call{
			{"WriteFile", func(ctx context.Context) error { _, err := tg.WriteFile(ctx, fx, f.src(), reg, nil); return err }},
			{"CreateFile", func(ctx context.Context) error {
				_, err := tg.CreateFile(ctx, gfid.Root, "created", gfid.New(), f.src(), reg, nil)
				return err
			}},
			{"Sync", func(ctx context.Context) error { return tg.Sync(ctx) }},
		}
		if hl, ok := tg.(target.HardLinker); ok {
			calls = append(calls, call{"Relink", func(ctx context.Context) error { return hl.Relink(ctx, fx, gfid.Root, "fx") }})
		}
		return calls
	})
}

func escapeIndex(t *testing.T, f *fixture) {
	d := f.dir(gfid.Root, "d")
	fx := f.file(gfid.Root, "fx", "old")
	f.h.Tamper.ReplaceStateDirWithSymlink(t, IndexDir, f.h.Outside)
	reg, dir := f.attr(unix.S_IFREG|0o666), f.attr(unix.S_IFDIR|0o777)
	f.attempt(func(tg target.Target) []call {
		return append([]call{
			{"Make", func(ctx context.Context) error { return tg.Make(ctx, gfid.Root, "made", gfid.New(), reg, "", nil) }},
			{"Make dir", func(ctx context.Context) error { return tg.Make(ctx, gfid.Root, "madedir", gfid.New(), dir, "", nil) }},
			{"CreateFile", func(ctx context.Context) error {
				_, err := tg.CreateFile(ctx, gfid.Root, "created", gfid.New(), f.src(), reg, nil)
				return err
			}},
			{"WriteFile", func(ctx context.Context) error { _, err := tg.WriteFile(ctx, fx, f.src(), reg, nil); return err }},
			{"Stat", func(ctx context.Context) error { _, err := tg.Stat(ctx, victimFile); return err }},
			{"SetMeta", func(ctx context.Context) error { return tg.SetMeta(ctx, fx, reg, nil, target.MetaAll) }},
			{"SetMeta dir", func(ctx context.Context) error { return tg.SetMeta(ctx, d, dir, nil, target.MetaAll) }},
			{"Rename", func(ctx context.Context) error { return tg.Rename(ctx, d, gfid.Root, "d", gfid.Root, "d2") }},
			{"Aside", func(ctx context.Context) error { return tg.Aside(ctx, gfid.Root, "fx", fx) }},
			{"Unlink", func(ctx context.Context) error { return tg.Unlink(ctx, gfid.Root, "fx", fx) }},
			{"Rmdir", func(ctx context.Context) error { return tg.Rmdir(ctx, gfid.Root, "d", d) }},
			{"EmptyLimbo", func(ctx context.Context) error { _, err := tg.EmptyLimbo(ctx); return err }},
			{"Sync", func(ctx context.Context) error { return tg.Sync(ctx) }},
			{"SetStime", func(ctx context.Context) error { return tg.SetStime(ctx, time.Unix(0, f.when)) }},
		}, capabilityEscapes(tg, gfid.Root, fx)...)
	})
}

func escapeClimb(t *testing.T, f *fixture) {
	d := f.dir(gfid.Root, "d")
	s := f.dir(d, "s")
	f.h.Tamper.RewritePointer(t, d, escapePointer)
	reg, dir := f.attr(unix.S_IFREG|0o666), f.attr(unix.S_IFDIR|0o777)
	f.attempt(func(tg target.Target) []call {
		return append([]call{
			f.noBait(tg, d),
			{"Make", func(ctx context.Context) error { return tg.Make(ctx, d, "escaped", gfid.New(), reg, "", nil) }},
			{"Make below", func(ctx context.Context) error { return tg.Make(ctx, s, "escaped", gfid.New(), reg, "", nil) }},
			{"Make dir", func(ctx context.Context) error { return tg.Make(ctx, d, "escapeddir", gfid.New(), dir, "", nil) }},
			{"CreateFile", func(ctx context.Context) error {
				_, err := tg.CreateFile(ctx, d, "escapedfile", gfid.New(), f.src(), reg, nil)
				return err
			}},
			{"SetMeta", func(ctx context.Context) error { return tg.SetMeta(ctx, d, dir, nil, target.MetaAll) }},
			{"Unlink", func(ctx context.Context) error { return tg.Unlink(ctx, d, "victim", victimFile) }},
			{"Rmdir", func(ctx context.Context) error { return tg.Rmdir(ctx, d, "victimdir", victimDir) }},
			{"Rename bait out", func(ctx context.Context) error {
				return tg.Rename(ctx, victimFile, d, "victim", gfid.Root, "stolen")
			}},
		}, capabilityEscapes(tg, d, gfid.Zero)...)
	})
}
