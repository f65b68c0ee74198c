package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runTimeout runs the replfs binary like run, but a command that has not
// finished within d fails the test instead of hanging it (a mount that
// deadlocks never reports ready).
func runTimeout(t *testing.T, d time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, replfsBin, args...)
	cmd.WaitDelay = 2 * time.Second
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Errorf("replfs %s did not finish within %s", strings.Join(args, " "), d)
		return result{so.String(), "timed out", -1}
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run replfs %v: %v", args, err)
	}
	return result{so.String(), se.String(), code}
}

// cleanupStuck undoes what a mount that should have been refused left:
// its kernel mount (dirs as the kernel shows them: resolved) and its
// daemon, found by the brick's lock file.
func cleanupStuck(t *testing.T, brick string, dirs ...string) {
	t.Cleanup(func() {
		for _, d := range dirs {
			if isMounted(d) {
				t.Logf("detaching %s, mounted by a command that should have been refused", d)
				syscall.Unmount(d, syscall.MNT_DETACH)
			}
		}
		b, _ := os.ReadFile(filepath.Join(brick, ".replfs/run/lock"))
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			if cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); bytes.Contains(cmdline, []byte(replfsBin)) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

// TestMountpointInsideBrickThroughSymlinkIsRefused: a mountpoint that
// is a directory of the brick, reached through a symlink to the brick,
// would make every lookup of it go through the mount itself (the daemon
// deadlocks). It is refused, at once, with the reason.
func TestMountpointInsideBrickThroughSymlinkIsRefused(t *testing.T) {
	requireFUSE(t)
	f := newFixture(t)
	must(t, os.Mkdir(f.b("inner"), 0o755))
	writeFile(t, f.b("inner/keep"), "x")
	link := filepath.Join(f.Root, "L")
	must(t, os.Symlink(f.Brick, link))
	cleanupStuck(t, f.Brick, f.b("inner"), filepath.Join(link, "inner"))
	before := snapshot(t, f.Root)

	for _, mnt := range []string{filepath.Join(link, "inner"), link + "/inner/", link} {
		r := runTimeout(t, 20*time.Second, "mount", f.Brick, mnt)
		expectOneLineError(t, r, 1, "is inside the brick "+f.Brick)
		if isMounted(f.b("inner")) || isMounted(f.Brick) {
			t.Fatalf("mounted at %s", mnt)
		}
	}
	r := runTimeout(t, 20*time.Second, "mount", f.Brick, filepath.Join(link, "inner"))
	if !strings.Contains(r.stderr, "(it is "+f.b("inner")+")") {
		t.Errorf("error does not say where the mountpoint leads: %q", r.stderr)
	}
	sameTree(t, before, snapshot(t, f.Root))
}

// TestMirrorAliasesAndNestingAreRefused: two names of one directory, a
// mirror inside another, a mirror inside or around the brick or the
// mountpoint: each spelling is caught before anything changes.
func TestMirrorAliasesAndNestingAreRefused(t *testing.T) {
	requireFUSE(t)
	f := newFixture(t)
	x := f.mirrorDir(t, "x")
	must(t, os.Mkdir(filepath.Join(x, "sub"), 0o755))
	y := f.mirrorDir(t, "y")
	xl := filepath.Join(f.Root, "xl")
	must(t, os.Symlink(x, xl))
	bl := filepath.Join(f.Root, "bl")
	must(t, os.Symlink(f.Brick, bl))
	must(t, os.Mkdir(f.b("in"), 0o755))
	cleanupStuck(t, f.Brick, f.Mnt)
	type tc struct {
		name, opts string
		code       int
		want       string
	}
	cases := []tc{
		{"mirror inside a mirror", "mirror=" + x + ",mirror=" + x + "/sub", 1, "mirror " + x + "/sub is inside the mirror " + x},
		{"mirror around a mirror", "mirror=" + x + "/sub,mirror=" + x, 1, "mirror " + x + "/sub is inside the mirror " + x},
		{"trailing slash", "mirror=" + x + ",mirror=" + x + "/", 2, "given twice"},
		{"through a symlink", "mirror=" + x + "/sub,mirror=" + xl + "/sub", 1, "is the same directory as mirror " + x + "/sub"},
		{"mirror root is a symlink", "mirror=" + xl, 1, "mirror " + xl + " is a symlink"},
		{"inside the brick through a symlink", "mirror=" + bl + "/in", 1, "is inside the brick " + f.Brick},
		{"around the brick", "mirror=" + f.Root, 1, "brick " + f.Brick + " is inside the mirror " + f.Root},
		{"the mountpoint, with a slash", "mirror=" + f.Mnt + "/", 1, "is inside the mountpoint " + f.Mnt},
		{"mirror root is a symlink, with a slash", "mirror=" + y + ",mirror-adopt=" + xl + "/", 1, "mirror " + xl + " is a symlink"},
		{"adopting around the brick", "mirror-adopt=" + f.Root, 1, "brick " + f.Brick + " is inside the mirror " + f.Root},
	}
	if os.Geteuid() == 0 {
		alias := f.mirrorDir(t, "alias")
		if err := syscall.Mount(x, alias, "", syscall.MS_BIND, ""); err == nil {
			t.Cleanup(func() { syscall.Unmount(alias, syscall.MNT_DETACH) })
			cases = append(cases,
				tc{"bind mount of a mirror", "mirror=" + x + ",mirror=" + alias, 1, "mirror " + alias + " is the same directory as mirror " + x},
				tc{"inside a bind mount of a mirror", "mirror=" + x + ",mirror=" + alias + "/sub", 1, "mirror " + alias + "/sub is inside the mirror " + x})
		}
	}
	before := snapshot(t, f.Root)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runTimeout(t, 20*time.Second, "mount", f.Brick, f.Mnt, "-o", c.opts)
			expectOneLineError(t, r, c.code, c.want)
			if isMounted(f.Mnt) {
				syscall.Unmount(f.Mnt, syscall.MNT_DETACH)
				t.Fatalf("mounted with -o %s", c.opts)
			}
		})
	}
	sameTree(t, before, snapshot(t, f.Root))
}
