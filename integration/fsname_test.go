package integration

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/xattr"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/mountinfo"
)

// With fsname=, mount(8) and df show that name instead of the brick, so
// the commands that take a mountpoint must find the brick another way.
func TestFsnameMountStillFindsItsBrick(t *testing.T) {
	f := newFixture(t)
	mirror := filepath.Join(f.Root, "mirror")
	must(t, os.Mkdir(mirror, 0o755))
	f.mount(t, "fsname=projects", "mirror="+mirror)

	mounts, err := mountinfo.Replfs()
	must(t, err)
	found := false
	for _, m := range mounts {
		if m.Mountpoint == f.Mnt {
			found = true
			if m.Source != "projects" {
				t.Fatalf("mount source is %q, want the fsname %q", m.Source, "projects")
			}
		}
	}
	if !found {
		t.Fatalf("%s not in mountinfo", f.Mnt)
	}

	writeFile(t, f.m("a.txt"), "hello\n")
	// The brick is told on the mount's root only, read-only, unlisted.
	if v, err := xattr.Get(f.Mnt, gfid.BrickPathXattr); err != nil || string(v) != f.Brick {
		t.Fatalf("%s on the mount root = %q, %v; want %q", gfid.BrickPathXattr, v, err, f.Brick)
	}
	if _, err := xattr.Get(f.m("a.txt"), gfid.BrickPathXattr); !errors.Is(err, syscall.ENODATA) {
		t.Fatalf("%s on a file: %v, want ENODATA", gfid.BrickPathXattr, err)
	}
	if err := xattr.Set(f.Mnt, gfid.BrickPathXattr, []byte("/elsewhere")); err == nil {
		t.Fatalf("setting %s through the mount succeeded", gfid.BrickPathXattr)
	}
	if names, err := xattr.List(f.Mnt); err != nil || slices.Contains(names, gfid.BrickPathXattr) {
		t.Fatalf("listxattr of the mount root = %v, %v; must not list %s", names, err, gfid.BrickPathXattr)
	}
	r := run(t, "inspect", f.m("a.txt"))
	if r.code != 0 || !strings.Contains(r.stdout, "gfid") {
		t.Fatalf("inspect through an fsname mount: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "checkpoint", f.Mnt)
	if r.code != 0 {
		t.Fatalf("checkpoint: exit %d: %s", r.code, r.stderr)
	}
	r = run(t, "status", f.Mnt, "--wait-checkpoint", "--timeout", "60s")
	if r.code != 0 || !strings.Contains(r.stdout, mirror) {
		t.Fatalf("status --wait-checkpoint: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "pause", f.Mnt, mirror)
	if r.code != 0 {
		t.Fatalf("pause: exit %d: %s", r.code, r.stderr)
	}
	r = run(t, "verify", f.Mnt, "--all-targets", "-q")
	if r.code != 0 {
		t.Fatalf("verify --all-targets of an fsname mount: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "resume", f.Mnt, mirror)
	if r.code != 0 {
		t.Fatalf("resume: exit %d: %s", r.code, r.stderr)
	}
	r = run(t, "journal", "dump", f.Mnt)
	if r.code != 0 || !strings.Contains(r.stdout, "a.txt") {
		t.Fatalf("journal dump of the mountpoint: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	start := time.Now()
	f.unmount(t)
	if isMounted(f.Mnt) {
		t.Fatalf("still mounted after replfs umount (%v)", time.Since(start))
	}
	if b, err := os.ReadFile(filepath.Join(mirror, "a.txt")); err != nil || string(b) != "hello\n" {
		t.Fatalf("mirror a.txt = %q, %v", b, err)
	}
}
