package integration

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/pkg/xattr"
)

// TestStateDirIsInvisibleAndUntouchable checks that .replfs cannot be
// seen, created, opened, renamed into or removed through the mount, and that
// replfs's own xattrs are neither listed nor settable.
func TestStateDirIsInvisibleAndUntouchable(t *testing.T) {
	f := newFixture(t)
	f.mount(t)
	writeFile(t, f.m("file"), "x")
	must(t, os.Mkdir(f.m("dir"), 0o755))

	ents, err := os.ReadDir(f.Mnt)
	must(t, err)
	for _, e := range ents {
		if e.Name() == ".replfs" {
			t.Fatal(".replfs listed in the mount root")
		}
	}
	if _, err := os.Lstat(f.m(".replfs")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat .replfs: %v, want not exist", err)
	}
	if _, err := os.Open(f.m(".replfs/brick.json")); err == nil {
		t.Error("opened .replfs/brick.json through the mount")
	}
	denied := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s succeeded", what)
		}
	}
	denied("mkdir .replfs", os.Mkdir(f.m(".replfs"), 0o755))
	denied("create .replfs", os.WriteFile(f.m(".replfs"), nil, 0o644))
	denied("rename into .replfs", os.Rename(f.m("file"), f.m(".replfs")))
	denied("rename dir onto .replfs", os.Rename(f.m("dir"), f.m(".replfs")))
	denied("symlink at .replfs", os.Symlink("file", f.m(".replfs")))
	denied("link at .replfs", os.Link(f.m("file"), f.m(".replfs")))
	denied("remove .replfs", os.Remove(f.m(".replfs")))
	denied("rmdir .replfs", syscall.Rmdir(f.m(".replfs")))
	denied("mknod .replfs", syscall.Mknod(f.m(".replfs"), syscall.S_IFIFO|0o644, 0))
	if _, err := os.Stat(f.b(".replfs/brick.json")); err != nil {
		t.Fatalf("brick state damaged: %v", err)
	}
	// A .replfs below the root is an ordinary name.
	must(t, os.Mkdir(f.m("dir/.replfs"), 0o755))

	for _, p := range []string{f.m("file"), f.m("dir"), f.Mnt} {
		names, err := xattr.LList(p)
		must(t, err)
		for _, n := range names {
			if strings.Contains(n, "replfs") {
				t.Errorf("%s lists private xattr %s", p, n)
			}
		}
		for _, n := range []string{"trusted.replfs.gfid", "user.replfs.gfid", "trusted.replfs.xtime"} {
			if _, err := xattr.LGet(p, n); err == nil {
				t.Errorf("%s: read private xattr %s", p, n)
			}
			if err := xattr.LSet(p, n, make([]byte, 16)); err == nil {
				t.Errorf("%s: set private xattr %s", p, n)
			}
			if err := xattr.LRemove(p, n); err == nil {
				t.Errorf("%s: removed private xattr %s", p, n)
			}
		}
	}
	before := gfidAt(t, f.b("file"))
	if after := gfidAt(t, f.b("file")); after != before {
		t.Fatal("gfid changed")
	}
	// Ordinary xattrs still work.
	must(t, xattr.LSet(f.m("file"), "user.ok", []byte("1")))
	v, err := xattr.LGet(f.m("file"), "user.ok")
	must(t, err)
	if string(v) != "1" {
		t.Errorf("user.ok = %q", v)
	}
}
