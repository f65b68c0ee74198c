package targettest

import (
	"errors"
	"io/fs"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

func testNeverOpened(t *testing.T, f *fixture) {
	wantErr(t, "Attach of a place never opened", f.tg.Attach(f.ctx, f.h.BrickID), target.ErrNotTarget)
	f.open() // the refusal left nothing in the way
	f.names("the root of a new target", f.list(gfid.Root))
}

// made is one inode the file-type case makes and reads back.
type made struct {
	name    string
	a       target.Attr
	link    string
	x       target.Xattrs
	content []byte // regular files made by CreateFile
	g       gfid.GFID
}

func testEveryFileType(t *testing.T, f *fixture) {
	f.open()
	parent := f.dir(gfid.Root, "types")
	// user.* xattrs are refused on symlinks and special files by Linux:
	// only directories and regular files carry them.
	xd := target.Xattrs{"user.targettest.dir": []byte("d")}
	xf := target.Xattrs{"user.targettest.file": []byte("f"), "user.targettest.empty": {}}
	chr := f.attr(unix.S_IFCHR | 0o640)
	chr.Rdev = unix.Mkdev(1, 3)
	all := []made{
		{name: "dir", a: f.attr(unix.S_IFDIR | 0o750), x: xd},
		{name: "file", a: f.attr(unix.S_IFREG | 0o640), x: xf, content: []byte("hello, target\n")},
		{name: "empty", a: f.attr(unix.S_IFREG | 0o600), x: xf},
		{name: "symlink", a: f.attr(unix.S_IFLNK | 0o777), link: "../somewhere/else"},
		{name: "fifo", a: f.attr(unix.S_IFIFO | 0o620)},
		{name: "socket", a: f.attr(unix.S_IFSOCK | 0o755)},
		{name: "chardev", a: chr},
	}
	var kept []made
	for _, m := range all {
		if m.content != nil {
			m.g = f.fileX(parent, m.name, m.content, m.a, m.x)
			kept = append(kept, m)
			continue
		}
		m.g = gfid.New()
		err := f.tg.Make(f.ctx, parent, m.name, m.g, m.a, m.link, m.x)
		if m.a.Type() == unix.S_IFCHR && errors.Is(err, fs.ErrPermission) {
			t.Logf("no character device made: %v (needs privilege)", err)
			continue
		}
		if err != nil {
			t.Fatalf("Make %s: %v", m.name, err)
		}
		// Make sets no times; a later SetMeta does, as the engine's.
		if err := f.tg.SetMeta(f.ctx, m.g, m.a, m.x, target.MetaAll); err != nil {
			t.Fatalf("SetMeta %s: %v", m.name, err)
		}
		kept = append(kept, m)
	}
	// Stat before any listing: reading a directory or a link updates
	// its atime on disk.
	for _, m := range kept {
		a := f.lookup(parent, m.name, m.g)
		checkAttr(t, "Lookup "+m.name, a, m, true)
		st, err := f.tg.Stat(f.ctx, m.g)
		if err != nil {
			t.Fatalf("Stat %s: %v", m.name, err)
		}
		checkAttr(t, "Stat "+m.name, st, m, true)
	}
	checkReadBack(t, f, parent, kept)
}

// checkReadBack reads kept back through every other call.
func checkReadBack(t *testing.T, f *fixture, parent gfid.GFID, kept []made) {
	listed := f.list(parent)
	var want []string
	for _, m := range kept {
		want = append(want, m.name)
		e, ok := listed[m.name]
		if !ok {
			continue
		}
		checkFull(t, "List "+m.name, e, m)
		if m.a.Type() == unix.S_IFREG {
			f.content("List "+m.name, e, m.content)
		} else if e.Hashed {
			t.Errorf("List %s: a %o is hashed", m.name, e.Mode)
		}
		lf, found, err := f.tg.LookupFull(f.ctx, parent, m.name)
		if err != nil || !found {
			t.Fatalf("LookupFull %s: found %v, %v", m.name, found, err)
		}
		checkFull(t, "LookupFull "+m.name, lf, m)
		if lf.Hashed {
			t.Errorf("LookupFull %s hashed the content", m.name)
		}
		x, err := f.tg.Xattrs(f.ctx, m.g)
		if err != nil || !sameXattrs(x, m.x) {
			t.Errorf("Xattrs %s: %s, %v; want %s", m.name, xattrString(x), err, xattrString(m.x))
		}
	}
	f.names("List of the directory", listed, want...)
	ents, err := f.tg.ReadDir(f.ctx, parent)
	if err != nil {
		t.Fatalf("ReadDir: %v", err)
	}
	if len(ents) != len(kept) {
		t.Errorf("ReadDir lists %d entries, want %d", len(ents), len(kept))
	}
	for _, e := range ents {
		if l, ok := listed[e.Name]; !ok || l.GFID != e.GFID || l.Mode != e.Mode {
			t.Errorf("ReadDir %s: gfid %s type %o; List says %s %o", e.Name, e.GFID, e.Mode, l.GFID, l.Mode)
		}
		if e.Mode != unix.S_IFDIR && e.Attr.Nlink != 1 {
			t.Errorf("ReadDir %s: nlink %d, want 1 (the index's link not counted)", e.Name, e.Attr.Nlink)
		}
	}
	if p, name, err := f.tg.Where(f.ctx, kept[0].g); err != nil || p != parent || name != kept[0].name {
		t.Errorf("Where of the directory: %s %q %v, want %s %q", p, name, err, parent, kept[0].name)
	}
}

// checkAttr compares what a target says of an inode with what was made.
func checkAttr(t *testing.T, what string, a target.Attr, m made, atime bool) {
	t.Helper()
	typ := m.a.Type()
	if a.Type() != typ {
		t.Errorf("%s: type %o, want %o", what, a.Type(), typ)
		return
	}
	if typ != unix.S_IFLNK && a.Mode&0o7777 != m.a.Mode&0o7777 {
		t.Errorf("%s: mode %o, want %o", what, a.Mode&0o7777, m.a.Mode&0o7777)
	}
	if a.UID != m.a.UID || a.GID != m.a.GID {
		t.Errorf("%s: owner %d:%d, want %d:%d", what, a.UID, a.GID, m.a.UID, m.a.GID)
	}
	if a.Mtime != m.a.Mtime || atime && a.Atime != m.a.Atime {
		t.Errorf("%s: mtime %s atime %s, want %s and %s", what, stamp(a.Mtime), stamp(a.Atime),
			stamp(m.a.Mtime), stamp(m.a.Atime))
	}
	switch typ {
	case unix.S_IFREG:
		if a.Size != int64(len(m.content)) {
			t.Errorf("%s: size %d, want %d", what, a.Size, len(m.content))
		}
	case unix.S_IFLNK:
		if a.Size != int64(len(m.link)) {
			t.Errorf("%s: size %d, want the link's length %d", what, a.Size, len(m.link))
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		if a.Rdev != m.a.Rdev {
			t.Errorf("%s: rdev %#x, want %#x", what, a.Rdev, m.a.Rdev)
		}
	}
	if typ != unix.S_IFDIR && a.Nlink != 1 {
		t.Errorf("%s: nlink %d, want 1 (the index's link not counted)", what, a.Nlink)
	}
}

func checkFull(t *testing.T, what string, e target.FullEntry, m made) {
	t.Helper()
	if e.Name != m.name || e.GFID != m.g || e.Mode != m.a.Type() {
		t.Errorf("%s: %q gfid %s type %o, want %q %s %o", what, e.Name, e.GFID, e.Mode, m.name, m.g, m.a.Type())
	}
	checkAttr(t, what, e.Attr, m, false)
	if e.Link != m.link {
		t.Errorf("%s: link %q, want %q", what, e.Link, m.link)
	}
	if !sameXattrs(e.Xattrs, m.x) {
		t.Errorf("%s: xattrs %s, want %s", what, xattrString(e.Xattrs), xattrString(m.x))
	}
}

func stamp(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

func testRootListing(t *testing.T, f *fixture) {
	f.open()
	f.names("the root of a new target", f.list(gfid.Root))
	if ents, err := f.tg.ReadDir(f.ctx, gfid.Root); err != nil || len(ents) != 0 {
		t.Errorf("ReadDir of the root of a new target: %+v, %v; want nothing", ents, err)
	}
	a := f.dir(gfid.Root, "a")
	f.file(gfid.Root, "b", "b")
	f.file(a, "c", "c")
	c := f.file(gfid.Root, "set-aside", "")
	if err := f.tg.Aside(f.ctx, gfid.Root, "set-aside", c); err != nil {
		t.Fatalf("Aside: %v", err)
	}
	f.names("the root", f.list(gfid.Root), "a", "b")
	if names := f.readDirNames(gfid.Root); !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("ReadDir of the root lists %q, want a and b", names)
	}
	if e, found, _ := f.tg.LookupFull(f.ctx, gfid.Root, gfid.StateDir); found {
		t.Errorf("LookupFull of %s at the root found %+v", gfid.StateDir, e)
	}
	if g, _, found, _ := f.tg.Lookup(f.ctx, gfid.Root, gfid.StateDir); found {
		t.Errorf("Lookup of %s at the root found %s", gfid.StateDir, g)
	}
}

func testAbsent(t *testing.T, f *fixture) {
	f.open()
	d := f.dir(gfid.Root, "d")
	missing := gfid.New()
	_, err := f.tg.Stat(f.ctx, missing)
	wantErr(t, "Stat of an unknown gfid", err, target.ErrNotExist)
	_, err = f.tg.Xattrs(f.ctx, missing)
	wantErr(t, "Xattrs of an unknown gfid", err, target.ErrNotExist)
	_, _, err = f.tg.Where(f.ctx, missing)
	wantErr(t, "Where of an unknown gfid", err, target.ErrNotExist)
	_, err = f.tg.ReadDir(f.ctx, missing)
	wantErr(t, "ReadDir of an unknown gfid", err, target.ErrNotExist)
	f.absent(d, "nope")
	f.absent(missing, "x")
	for _, p := range []gfid.GFID{d, missing} {
		if e, found, err := f.tg.LookupFull(f.ctx, p, "nope"); found || err != nil {
			t.Errorf("LookupFull of a missing entry: %+v, found %v, %v", e, found, err)
		}
	}
	wantErr(t, "Make in an unknown directory",
		f.tg.Make(f.ctx, missing, "x", gfid.New(), f.attr(unix.S_IFREG|0o644), "", nil), target.ErrNotExist)
	wantErr(t, "SetMeta of an unknown gfid",
		f.tg.SetMeta(f.ctx, missing, f.attr(unix.S_IFREG|0o644), nil, target.MetaAll), target.ErrNotExist)
	_, err = f.tg.WriteFile(f.ctx, missing, bytesSource("x", []byte("x")), f.attr(unix.S_IFREG|0o644), nil)
	wantErr(t, "WriteFile of an unknown gfid", err, target.ErrNotExist)
	wantErr(t, "Rename out of an unknown directory",
		f.tg.Rename(f.ctx, gfid.New(), missing, "x", d, "y"), target.ErrNotExist)
	f.names("the root", f.list(gfid.Root), "d")
	f.names("d", f.list(d))
}

// readDirNames is ReadDir's names, sorted.
func (f *fixture) readDirNames(dir gfid.GFID) []string {
	f.t.Helper()
	ents, err := f.tg.ReadDir(f.ctx, dir)
	if err != nil {
		f.t.Fatalf("ReadDir %s: %v", dir, err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	slices.Sort(names)
	return names
}
