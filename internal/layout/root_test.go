package layout

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
)

func TestOpenNeverFollowsASymlinkOrLeavesTheRoot(t *testing.T) {
	top := t.TempDir()
	root := filepath.Join(top, "root")
	outside := filepath.Join(top, "outside")
	for _, d := range []string{root + "/d", outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, root+"/link"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("d", root+"/inner"); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, c := range []struct {
		rel  string
		want error
	}{
		{"link", unix.ENOTDIR},  // a symlink out of the root, last on the path
		{"link/x", unix.ELOOP},  // a symlink on the way
		{"inner", unix.ENOTDIR}, // even one that stays inside (os.Root would follow it)
		{"inner/.", unix.ELOOP},
		{"d/../..", unix.EXDEV}, // ".." out of the root
		{"../outside", unix.EXDEV},
		{"/etc", unix.EXDEV},
	} {
		fd, err := r.OpenDir(c.rel)
		if err == nil {
			unix.Close(fd)
			t.Errorf("OpenDir(%q) succeeded", c.rel)
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("OpenDir(%q) = %v, want %v", c.rel, err, c.want)
		}
	}
	for _, rel := range []string{"", ".", "d"} {
		fd, err := r.OpenDir(rel)
		if err != nil {
			t.Errorf("OpenDir(%q): %v", rel, err)
			continue
		}
		unix.Close(fd)
	}
	if err := r.MkdirAll("link/x", 0o700); err == nil {
		t.Error("MkdirAll through a symlink succeeded")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("MkdirAll wrote outside the root: %v", ents)
	}
	if err := r.MkdirAll(".replfs/gfid/ab/cd", 0o700); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRootRefusesASymlink(t *testing.T) {
	top := t.TempDir()
	os.Mkdir(top+"/real", 0o755)
	os.Symlink("real", top+"/alias")
	if _, err := OpenRoot(top + "/alias"); err == nil {
		t.Fatal("a symlink root was accepted")
	}
	os.WriteFile(top+"/file", nil, 0o644)
	if _, err := OpenRoot(top + "/file"); err == nil {
		t.Fatal("a file root was accepted")
	}
}

func TestReadPointerTakesOnlyPointersReplfsWrote(t *testing.T) {
	dir := t.TempDir()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	parent := gfid.New()
	mk := func(name, target string, links int) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < links; i++ {
			if err := os.Link(filepath.Join(dir, name), filepath.Join(dir, name+".l")); err != nil {
				t.Fatal(err)
			}
		}
	}
	rootDotDot := "../../00/00/" + gfid.Root.String() + "/.."
	mk("good", gfid.DirPointer(parent, "sub"), 1)
	mk("user", gfid.DirPointer(parent, "sub"), 2) // a user's symlink: hard-linked by the index
	mk("dotdot", rootDotDot, 1)
	mk("state", gfid.DirPointer(gfid.Root, gfid.StateDir), 1)
	mk("badbucket", "../../ff/ff/"+parent.String()+"/sub", 1)
	mk("deep", gfid.DirPointer(parent, "a")+"/b", 1)
	mk("root", gfid.RootPointer, 1)

	if p, name, isRoot, err := ReadPointer(fd, "good"); err != nil || p != parent || name != "sub" || isRoot {
		t.Errorf("good pointer: %v %q %v %v", p, name, isRoot, err)
	}
	if _, _, isRoot, err := ReadPointer(fd, "root"); err != nil || !isRoot {
		t.Errorf("root pointer: %v %v", isRoot, err)
	}
	for _, n := range []string{"user", "dotdot", "state", "badbucket", "deep"} {
		if _, _, _, err := ReadPointer(fd, n); !errors.Is(err, ErrNotPointer) {
			t.Errorf("%s: read as a pointer (err %v)", n, err)
		}
	}
}

func TestAtOperationsChangeTheSymlinkNotItsTarget(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	var before unix.Stat_t
	unix.Stat(victim, &before)
	os.Symlink(victim, dir+"/l")
	fd, _ := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	defer unix.Close(fd)
	if err := Chmod(fd, "l", 0o777); err == nil {
		t.Error("chmod of a symlink succeeded")
	}
	if err := Chown(fd, "l", 1234, 1234); err != nil {
		t.Fatal(err)
	}
	if err := Utimes(fd, "l", 1e9, 1e9); err != nil {
		t.Fatal(err)
	}
	Setxattr(fd, "l", "trusted.t", []byte("v"), 0)
	var after unix.Stat_t
	unix.Stat(victim, &after)
	if after.Mode != before.Mode || after.Uid != before.Uid || after.Mtim != before.Mtim {
		t.Errorf("the symlink's target changed: %+v -> %+v", before, after)
	}
	if n, _ := unix.Getxattr(victim, "trusted.t", nil); n > 0 {
		t.Error("xattr set on the symlink's target")
	}
	var lst unix.Stat_t
	unix.Lstat(dir+"/l", &lst)
	if lst.Uid != 1234 {
		t.Errorf("the symlink's owner is %d", lst.Uid)
	}
}
