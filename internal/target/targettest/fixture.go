package targettest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/contenthash"
	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// fixture is one subtest's target and the helpers that drive it. Helpers
// whose name says what they make fail the test when they cannot.
type fixture struct {
	t        *testing.T
	h        Harness
	tg       target.Target
	ctx      context.Context
	uid, gid uint32
	when     int64 // the mtime the suite gives what it makes (unix ns)
}

// big is a hashBelow that hashes every file the suite makes.
const big = 1 << 30

func newFixture(t *testing.T, newTarget func(t *testing.T) Harness) *fixture {
	h := newTarget(t)
	if h.BrickID == "" {
		h.BrickID = gfid.New().String()
	}
	if h.Outside != "" {
		watchOutside(t, h)
	}
	t.Cleanup(func() { h.Target.Close() })
	f := &fixture{t: t, h: h, tg: h.Target, ctx: t.Context(),
		uid: uint32(os.Getuid()), gid: uint32(os.Getgid()),
		when: time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC).UnixNano()}
	if os.Geteuid() == 0 {
		// Owners other than the suite's own can only be given by root
		// to a kind that keeps them on disk.
		f.uid, f.gid = 4242, 4343
	}
	return f
}

// open opens the fixture's target for its brick.
func (f *fixture) open() {
	f.t.Helper()
	if err := f.tg.Open(f.ctx, f.h.BrickID); err != nil {
		f.t.Fatalf("Open(%s): %v", f.h.BrickID, err)
	}
}

// reopen returns a second handle on the place, opened (Attach when
// attach is set), closed at the end of the test.
func (f *fixture) reopen(attach bool) target.Target {
	f.t.Helper()
	tg := f.h.Reopen(f.t)
	f.t.Cleanup(func() { tg.Close() })
	call, err := "Open", error(nil)
	if attach {
		call, err = "Attach", tg.Attach(f.ctx, f.h.BrickID)
	} else {
		err = tg.Open(f.ctx, f.h.BrickID)
	}
	if err != nil {
		f.t.Fatalf("reopened target: %s(%s): %v", call, f.h.BrickID, err)
	}
	return tg
}

// attr is what the suite makes an inode of type and permissions mode
// with: its owner, mtime f.when and an atime an hour later.
func (f *fixture) attr(mode uint32) target.Attr {
	return target.Attr{Mode: mode, UID: f.uid, GID: f.gid, Mtime: f.when, Atime: f.when + int64(time.Hour)}
}

// mk makes parent/name with a, link and x, and returns its new gfid.
func (f *fixture) mk(parent gfid.GFID, name string, a target.Attr, link string, x target.Xattrs) gfid.GFID {
	f.t.Helper()
	g := gfid.New()
	if err := f.tg.Make(f.ctx, parent, name, g, a, link, x); err != nil {
		f.t.Fatalf("Make %s (mode %o): %v", name, a.Mode, err)
	}
	return g
}

func (f *fixture) dir(parent gfid.GFID, name string) gfid.GFID {
	f.t.Helper()
	return f.mk(parent, name, f.attr(unix.S_IFDIR|0o755), "", nil)
}

// file makes parent/name holding content (CreateFile).
func (f *fixture) file(parent gfid.GFID, name string, content string) gfid.GFID {
	f.t.Helper()
	return f.fileX(parent, name, []byte(content), f.attr(unix.S_IFREG|0o644), nil)
}

func (f *fixture) fileX(parent gfid.GFID, name string, content []byte, a target.Attr, x target.Xattrs) gfid.GFID {
	f.t.Helper()
	g := gfid.New()
	a.Size = int64(len(content))
	n, err := f.tg.CreateFile(f.ctx, parent, name, g, bytesSource(name, content), a, x)
	if err != nil {
		f.t.Fatalf("CreateFile %s: %v", name, err)
	}
	if n != int64(len(content)) {
		f.t.Errorf("CreateFile %s wrote %d bytes, want %d", name, n, len(content))
	}
	return g
}

// lookup finds parent/name and checks that it holds want.
func (f *fixture) lookup(parent gfid.GFID, name string, want gfid.GFID) target.Attr {
	f.t.Helper()
	g, a, found, err := f.tg.Lookup(f.ctx, parent, name)
	switch {
	case err != nil:
		f.t.Fatalf("Lookup %s: %v", name, err)
	case !found:
		f.t.Fatalf("Lookup %s: not found", name)
	case g != want:
		f.t.Errorf("Lookup %s: gfid %s, want %s", name, g, want)
	}
	return a
}

// absent checks that parent/name does not exist.
func (f *fixture) absent(parent gfid.GFID, name string) {
	f.t.Helper()
	g, _, found, err := f.tg.Lookup(f.ctx, parent, name)
	if err != nil || found {
		f.t.Errorf("Lookup %s: found %v (gfid %s), err %v; want it absent", name, found, g, err)
	}
}

// gone checks that the target holds no inode g.
func (f *fixture) gone(g gfid.GFID, what string) {
	f.t.Helper()
	if a, err := f.tg.Stat(f.ctx, g); !errors.Is(err, target.ErrNotExist) {
		f.t.Errorf("Stat of %s (%s) after its removal: %+v, %v; want ErrNotExist", what, g, a, err)
	}
}

// list lists dir by name, hashing every file.
func (f *fixture) list(dir gfid.GFID) map[string]target.FullEntry {
	f.t.Helper()
	return listOf(f.t, f.ctx, f.tg, dir)
}

func listOf(t *testing.T, ctx context.Context, tg target.Target, dir gfid.GFID) map[string]target.FullEntry {
	t.Helper()
	es, err := tg.List(ctx, dir, big)
	if err != nil {
		t.Fatalf("List %s: %v", dir, err)
	}
	out := make(map[string]target.FullEntry, len(es))
	for _, e := range es {
		if _, dup := out[e.Name]; dup {
			t.Errorf("List %s: %q listed twice", dir, e.Name)
		}
		out[e.Name] = e
	}
	return out
}

// names checks that a listing holds exactly want.
func (f *fixture) names(what string, got map[string]target.FullEntry, want ...string) {
	f.t.Helper()
	g := slices.Sorted(maps.Keys(got))
	slices.Sort(want)
	if !slices.Equal(g, want) {
		f.t.Errorf("%s lists %q, want %q", what, g, want)
	}
}

// content checks that e is a regular file holding want.
func (f *fixture) content(what string, e target.FullEntry, want []byte) {
	f.t.Helper()
	switch {
	case e.Mode != unix.S_IFREG:
		f.t.Errorf("%s: type %o, want a regular file", what, e.Mode)
	case !e.Hashed || e.HashErr != nil:
		f.t.Errorf("%s: not hashed by List (Hashed %v, HashErr %v)", what, e.Hashed, e.HashErr)
	case e.Sum != contenthash.Bytes(want) || e.N != int64(len(want)) || e.Attr.Size != int64(len(want)):
		f.t.Errorf("%s: %d bytes (size %d) hashing %s, want %d bytes hashing %s",
			what, e.N, e.Attr.Size, e.Sum, len(want), contenthash.Bytes(want))
	}
}

// tree lists the whole namespace below the root: path -> a description
// of its entry (every field List returns but atime, and ctime unless
// asked for), so that two trees compare as strings.
func tree(t *testing.T, ctx context.Context, tg target.Target, ctime bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(dir gfid.GFID, prefix string, depth int)
	walk = func(dir gfid.GFID, prefix string, depth int) {
		if depth > 64 {
			t.Fatalf("tree: deeper than 64 below the root at %s", prefix)
		}
		for name, e := range listOf(t, ctx, tg, dir) {
			p := prefix + name
			out[p] = describe(e, ctime)
			if e.Mode == unix.S_IFDIR {
				walk(e.GFID, p+"/", depth+1)
			}
		}
	}
	walk(gfid.Root, "", 0)
	return out
}

func describe(e target.FullEntry, ctime bool) string {
	a := e.Attr
	s := fmt.Sprintf("type=%o gfid=%s mode=%o uid=%d gid=%d rdev=%d mtime=%d ino=%d nlink=%d link=%q xattrs=%s",
		e.Mode, e.GFID, a.Mode, a.UID, a.GID, a.Rdev, a.Mtime, a.Ino, a.Nlink, e.Link, xattrString(e.Xattrs))
	if e.Mode != unix.S_IFDIR {
		s += fmt.Sprintf(" size=%d", a.Size)
	}
	if e.Hashed {
		s += fmt.Sprintf(" sum=%s n=%d err=%v", e.Sum, e.N, e.HashErr)
	}
	if ctime {
		s += fmt.Sprintf(" ctime=%d", a.Ctime)
	}
	return s
}

func xattrString(x target.Xattrs) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(x)) {
		fmt.Fprintf(&b, "%s=%q;", k, x[k])
	}
	return b.String()
}

// sameTree reports how after differs from before.
func sameTree(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for _, p := range slices.Sorted(maps.Keys(before)) {
		switch a, ok := after[p]; {
		case !ok:
			t.Errorf("%s: %s is gone (was %s)", what, p, before[p])
		case a != before[p]:
			t.Errorf("%s: %s changed:\n was %s\n now %s", what, p, before[p], a)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(after)) {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s appeared: %s", what, p, after[p])
		}
	}
}

func sameXattrs(a, b target.Xattrs) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// wantErr checks that err wraps want.
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want an error wrapping %q", what, err, want)
	}
}

// capability returns tg as C, or skips the test when the kind lacks it.
func capability[C any](t *testing.T, tg target.Target) C {
	t.Helper()
	c, ok := tg.(C)
	if !ok {
		t.Skipf("kind %s does not implement %s", tg.Kind(), reflect.TypeFor[C]())
	}
	return c
}

// source is a target.Source over b.
type source struct {
	*bytes.Reader
	name string
}

func (s source) Name() string { return s.name }

func bytesSource(name string, b []byte) target.Source { return source{bytes.NewReader(b), name} }
