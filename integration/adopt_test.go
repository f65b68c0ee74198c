package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNonEmptyMirrorIsRefusedAndKept: a mirror= directory that holds
// something and is not a mirror of this brick would be wiped by the first
// crawl; the mount is refused, saying how to go on, and nothing changes.
func TestNonEmptyMirrorIsRefusedAndKept(t *testing.T) {
	requireFUSE(t)
	f := newFixture(t)
	writeFile(t, f.b("brickfile"), "b")
	x := f.mirrorDir(t, "x")
	must(t, os.MkdirAll(filepath.Join(x, "projects"), 0o755))
	writeFile(t, filepath.Join(x, "projects/thesis.tex"), "precious")
	// Even a .replfs (no target.json) with something in it is not empty.
	y := f.mirrorDir(t, "y")
	must(t, os.MkdirAll(filepath.Join(y, ".replfs/adopt"), 0o700))
	cleanupStuck(t, f.Brick, f.Mnt)
	before := snapshot(t, f.Root)
	for _, dir := range []string{x, y} {
		r := runTimeout(t, 20*time.Second, "mount", f.Brick, f.Mnt, "-o", "mirror="+dir)
		expectOneLineError(t, r, 1, "mirror "+dir+" is not empty and is not a mirror of this brick")
		if !strings.Contains(r.stderr, "mirror-adopt="+dir) {
			t.Errorf("error does not say how to adopt the directory: %q", r.stderr)
		}
		if isMounted(f.Mnt) {
			f.unmountQuiet(t)
			t.Fatalf("mounted with a non-empty mirror %s", dir)
		}
	}
	sameTree(t, before, snapshot(t, f.Root))
	if b, err := os.ReadFile(filepath.Join(x, "projects/thesis.tex")); err != nil || string(b) != "precious" {
		t.Fatalf("thesis.tex: %q, %v", b, err)
	}
}

// adoptSetup makes a brick and a copy of it that differs: a stale file at
// a shared path, extra files and directories, and an entry of another
// type. It returns the copy and what adopting it must list as removed.
func adoptSetup(t *testing.T, f *fixture) (string, []string) {
	t.Helper()
	for p, c := range map[string]string{"a/keep.txt": "new", "a/only-brick": "1", "t": "file on the brick", "same": "s"} {
		must(t, os.MkdirAll(filepath.Dir(f.b(p)), 0o755))
		writeFile(t, f.b(p), c)
	}
	x := f.mirrorDir(t, "copy")
	for p, c := range map[string]string{"a/keep.txt": "old", "same": "s", "extra.txt": "e",
		"projects/thesis.tex": "precious", "projects/deep/er": "z", "t/inner": "dir on the copy", "a/b c\nd": "odd name"} {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(x, p)), 0o755))
		writeFile(t, filepath.Join(x, p), c)
	}
	must(t, os.Symlink("keep.txt", filepath.Join(x, "a/link")))
	return x, []string{`"a/b c\nd"`, "a/link", "extra.txt", "projects/", "projects/deep/", "projects/deep/er",
		"projects/thesis.tex", "t/", "t/inner"}
}

// removedList reads .replfs/adopt/removed.txt without its comment lines.
func removedList(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ".replfs/adopt/removed.txt"))
	must(t, err)
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// TestMirrorAdoptListsWhatGoesThenSeedsTheMirror: mirror-adopt= takes an
// existing copy: what the brick lacks is listed before it is removed, the
// first crawl makes the copy equal to the brick, and the directory is a
// plain mirror from then on.
func TestMirrorAdoptListsWhatGoesThenSeedsTheMirror(t *testing.T) {
	f := newFixture(t)
	x, want := adoptSetup(t, f)
	f.mount(t, "rollover=100ms", "mirror-adopt="+x)
	if got := removedList(t, x); !slices.Equal(got, want) {
		t.Errorf("removed.txt lists\n%q\nwant\n%q", got, want)
	}
	log, _ := os.ReadFile(f.b(".replfs/log/replfs.log"))
	if !strings.Contains(string(log), `"entries":9`) || !strings.Contains(string(log), "removed.txt") {
		t.Errorf("the daemon did not log how many entries go and where they are listed:\n%s", logWarnings(f.Brick))
	}
	converge(t, f.Brick, x, 30*time.Second)
	f.unmount(t)

	// Adopted: a plain mirror= now, and mirror-adopt= again changes nothing.
	for _, opt := range []string{"mirror=", "mirror-adopt="} {
		f.mount(t, "rollover=100ms", opt+x)
		writeFile(t, f.m("after-"+strings.TrimSuffix(opt, "=")), "later")
		converge(t, f.Brick, x, 30*time.Second)
		f.unmount(t)
	}
	if got := removedList(t, x); !slices.Equal(got, want) {
		t.Errorf("a later mount rewrote removed.txt: %q", got)
	}
}

// TestMirrorAdoptFromFstab: the option passes through mount(8) and
// mount.fuse3 like the others.
func TestMirrorAdoptFromFstab(t *testing.T) {
	f := newFixture(t)
	x, want := adoptSetup(t, f)
	out, err := mountFstab(t, f, "defaults,_netdev,rollover=100ms,mirror-adopt="+x)
	if err != nil {
		t.Fatalf("mount --fstab: %v: %s", err, out)
	}
	t.Cleanup(func() { f.unmountQuiet(t) })
	if got := removedList(t, x); !slices.Equal(got, want) {
		t.Errorf("removed.txt lists %q, want %q", got, want)
	}
	converge(t, f.Brick, x, 30*time.Second)
	if out, err := exec.Command("umount", f.Mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	waitFor(t, 10*time.Second, "daemon to release the brick", func() bool {
		b, _ := os.ReadFile(f.b(".replfs/run/lock"))
		return len(strings.TrimSpace(string(b))) == 0
	})
}
