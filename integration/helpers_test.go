// Package integration runs replfs as a user would: the real binary, real
// FUSE mounts in temporary directories, real workloads. When CI=true and
// FUSE cannot be mounted, the tests fail instead of skipping.
package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/xattr"

	"github.com/replfs/replfs/internal/gfid"
)

var replfsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "replfs-it-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	replfsBin = filepath.Join(dir, "replfs")
	out, err := exec.Command("go", "build", "-o", replfsBin, "../cmd/replfs").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build replfs: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireFUSE skips a test on a machine without FUSE, except in CI, where
// a test that cannot mount must fail so that green means "mounted".
func requireFUSE(t testing.TB) {
	t.Helper()
	reason := ""
	if _, err := os.Stat("/dev/fuse"); err != nil {
		reason = "no /dev/fuse"
	} else if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			reason = "not root and no fusermount3"
		}
	}
	if reason == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("FUSE unavailable in CI: %s", reason)
	}
	t.Skipf("FUSE unavailable: %s", reason)
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs the replfs binary.
func run(t testing.TB, args ...string) result {
	t.Helper()
	return runBin(t, replfsBin, args...)
}

func runBin(t testing.TB, bin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s %v: %v", bin, args, err)
	}
	return result{so.String(), se.String(), code}
}

// fixture is a brick and a mountpoint under one temporary directory.
type fixture struct {
	Root, Brick, Mnt string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	root := t.TempDir()
	f := &fixture{Root: root, Brick: filepath.Join(root, "brick"), Mnt: filepath.Join(root, "mnt")}
	for _, d := range []string{f.Brick, f.Mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// mount mounts the fixture's brick through the replfs binary and unmounts
// it in cleanup.
func (f *fixture) mount(t testing.TB, opts ...string) {
	t.Helper()
	requireFUSE(t)
	args := []string{"mount", f.Brick, f.Mnt}
	if len(opts) > 0 {
		args = append(args, "-o", strings.Join(opts, ","))
	}
	r := run(t, args...)
	if r.code != 0 {
		t.Fatalf("replfs mount failed (exit %d): %s%s", r.code, r.stdout, r.stderr)
	}
	t.Cleanup(func() { f.unmountQuiet(t) })
}

// unmount unmounts through "replfs umount", which waits for the daemon to
// seal the journal.
func (f *fixture) unmount(t testing.TB) {
	t.Helper()
	r := run(t, "umount", f.Mnt)
	if r.code != 0 {
		t.Fatalf("replfs umount: exit %d: %s", r.code, r.stderr)
	}
}

func (f *fixture) unmountQuiet(t testing.TB) {
	if !isMounted(f.Mnt) {
		return
	}
	if r := run(t, "umount", f.Mnt); r.code != 0 {
		t.Logf("replfs umount %s: %s; detaching", f.Mnt, r.stderr)
		syscall.Unmount(f.Mnt, syscall.MNT_DETACH)
	}
}

func isMounted(dir string) bool {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && fields[4] == dir {
			return true
		}
	}
	return false
}

// m returns a path inside the mount; b the same path inside the brick.
func (f *fixture) m(rel string) string { return filepath.Join(f.Mnt, rel) }
func (f *fixture) b(rel string) string { return filepath.Join(f.Brick, rel) }

// gfidAt reads the gfid of a brick path straight from its xattr.
func gfidAt(t testing.TB, p string) gfid.GFID {
	t.Helper()
	for _, name := range []string{gfid.XattrTrusted, gfid.XattrUser} {
		if v, err := xattr.LGet(p, name); err == nil {
			g, err := gfid.FromBytes(v)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			return g
		}
	}
	t.Fatalf("%s has no gfid xattr", p)
	return gfid.Zero
}

// rec is a journal record as `replfs journal dump --json` prints it.
type rec struct {
	Seq     uint64 `json:"seq"`
	Kind    string `json:"kind"`
	Op      string `json:"op"`
	GFID    string `json:"gfid"`
	Parent  string `json:"parent"`
	Name    string `json:"name"`
	Parent2 string `json:"parent2"`
	Name2   string `json:"name2"`
	Mode    uint32 `json:"mode"`
	Target  string `json:"target"`
	Xattr   string `json:"xattr"`
	Mask    uint32 `json:"mask"`
}

func dumpJournal(t testing.TB, brick string) []rec {
	t.Helper()
	r := run(t, "journal", "dump", "--json", brick)
	if r.code != 0 {
		t.Fatalf("journal dump: exit %d: %s", r.code, r.stderr)
	}
	var out []rec
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var x rec
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			t.Fatalf("bad dump line %q: %v", sc.Text(), err)
		}
		out = append(out, x)
	}
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, p, content string) {
	t.Helper()
	must(t, os.WriteFile(p, []byte(content), 0o644))
}
