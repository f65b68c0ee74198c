package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
)

// TestRenameFlagsAreJournaledAndIndexed covers RENAME_NOREPLACE and
// RENAME_EXCHANGE of two directories: records carry the flags, and the
// swapped directories' index pointers follow them.
func TestRenameFlagsAreJournaledAndIndexed(t *testing.T) {
	f := newFixture(t)
	f.mount(t)
	must(t, os.Mkdir(f.m("a"), 0o755))
	must(t, os.Mkdir(f.m("b"), 0o755))
	writeFile(t, f.m("a/in-a"), "1")
	writeFile(t, f.m("x"), "x")
	ag, bg := gfidAt(t, f.b("a")), gfidAt(t, f.b("b"))

	err := unix.Renameat2(unix.AT_FDCWD, f.m("x"), unix.AT_FDCWD, f.m("a"), unix.RENAME_NOREPLACE)
	if err != unix.EEXIST {
		t.Fatalf("RENAME_NOREPLACE onto an existing name: %v, want EEXIST", err)
	}
	must(t, unix.Renameat2(unix.AT_FDCWD, f.m("a"), unix.AT_FDCWD, f.m("b"), unix.RENAME_EXCHANGE))
	if _, err := os.Stat(f.m("b/in-a")); err != nil {
		t.Fatalf("after exchange b/in-a is missing: %v", err)
	}
	if gfidAt(t, f.b("b")) != ag || gfidAt(t, f.b("a")) != bg {
		t.Fatal("gfids did not move with the exchanged directories")
	}
	for g, name := range map[gfid.GFID]string{ag: "b", bg: "a"} {
		target, err := os.Readlink(filepath.Join(f.Brick, g.IndexPath()))
		must(t, err)
		if !strings.HasSuffix(target, gfid.Root.String()+"/"+name) {
			t.Errorf("index pointer of %s is %q, want .../%s", g, target, name)
		}
	}
	must(t, unix.Renameat2(unix.AT_FDCWD, f.m("x"), unix.AT_FDCWD, f.m("y"), unix.RENAME_NOREPLACE))
	f.unmount(t)

	var flags []uint32
	for _, r := range dumpJournal(t, f.Brick) {
		if r.Op == "RENAME" {
			flags = append(flags, r.Mode)
		}
	}
	text := run(t, "journal", "dump", f.Brick).stdout
	if !strings.Contains(text, "RENAME "+gfid.Root.String()+"/a "+gfid.Root.String()+"/b flags=2") {
		t.Errorf("no RENAME_EXCHANGE record in dump:\n%s", text)
	}
	if !strings.Contains(text, gfid.Root.String()+"/x "+gfid.Root.String()+"/y flags=1") {
		t.Errorf("no RENAME_NOREPLACE record in dump:\n%s", text)
	}
	checkIndexExact(t, f.Brick)
}

// TestFileOpenForWritingGetsDataRecordInEverySegment holds a file open for
// writing across several rollovers: with passthrough the daemon never sees
// the writes, so each segment must carry a D record for it.
func TestFileOpenForWritingGetsDataRecordInEverySegment(t *testing.T) {
	f := newFixture(t)
	f.mount(t, "rollover=100ms")
	fh, err := os.Create(f.m("log"))
	must(t, err)
	g := gfidAt(t, f.b("log"))
	segsBefore := countSegments(t, f.Brick)
	for i := 0; i < 8; i++ {
		_, err := fh.WriteString("line\n")
		must(t, err)
		time.Sleep(60 * time.Millisecond) // spread writes over several windows
	}
	waitFor(t, 5*time.Second, "three sealed segments", func() bool { return countSegments(t, f.Brick) >= segsBefore+3 })
	must(t, fh.Close())
	f.unmount(t)

	// Group D records for the file by segment, independently of replfs's
	// reader: seqs of each sealed segment are in its name.
	segs, _ := filepath.Glob(f.b(".replfs/journal/seg-*-*.rjl"))
	var ranges [][2]uint64
	for _, s := range segs {
		var a, b uint64
		base := filepath.Base(s)
		if _, err := fmt.Sscanf(base, "seg-%020d-%020d.rjl", &a, &b); err == nil {
			ranges = append(ranges, [2]uint64{a, b})
		}
	}
	withD := map[int]bool{}
	for _, r := range dumpJournal(t, f.Brick) {
		if r.Kind == "D" && r.GFID == g.String() {
			for i, rg := range ranges {
				if r.Seq >= rg[0] && r.Seq <= rg[1] {
					withD[i] = true
				}
			}
		}
	}
	if len(withD) != len(ranges) {
		t.Errorf("%d of %d sealed segments carry a D record for the open file", len(withD), len(ranges))
	}
}

func countSegments(t *testing.T, brick string) int {
	segs, _ := filepath.Glob(filepath.Join(brick, ".replfs/journal/seg-*-*.rjl"))
	return len(segs)
}

func xtimeOf(t *testing.T, p string) time.Time {
	t.Helper()
	v, err := xattr.LGet(p, gfid.XtimeTrusted)
	if err != nil {
		v, err = xattr.LGet(p, gfid.XtimeUser)
	}
	if err != nil || len(v) != 12 {
		return time.Time{}
	}
	sec := int64(0)
	for _, c := range v[:8] {
		sec = sec<<8 | int64(c)
	}
	ns := int64(0)
	for _, c := range v[8:] {
		ns = ns<<8 | int64(c)
	}
	return time.Unix(sec, ns)
}

// TestXtimeMarksChangedInodeAndAncestors checks that a change deep in the
// tree moves the xtime of the inode and every ancestor up to the root, and
// leaves an unrelated sibling subtree alone.
func TestXtimeMarksChangedInodeAndAncestors(t *testing.T) {
	f := newFixture(t)
	f.mount(t, "rollover=100ms")
	must(t, os.MkdirAll(f.m("a/b/c"), 0o755))
	must(t, os.MkdirAll(f.m("other/deep"), 0o755))
	writeFile(t, f.m("other/deep/file"), "x")
	waitFor(t, 5*time.Second, "first xtimes", func() bool { return !xtimeOf(t, f.b("other/deep/file")).IsZero() })
	time.Sleep(150 * time.Millisecond)
	otherBefore := xtimeOf(t, f.b("other"))
	t0 := time.Now()
	writeFile(t, f.m("a/b/c/file"), "y")
	chain := []string{"a/b/c/file", "a/b/c", "a/b", "a", ""}
	waitFor(t, 5*time.Second, "xtime on the changed file and all ancestors", func() bool {
		for _, rel := range chain {
			if xtimeOf(t, f.b(rel)).Before(t0) {
				return false
			}
		}
		return true
	})
	if got := xtimeOf(t, f.b("other")); !got.Equal(otherBefore) {
		t.Errorf("xtime of an unchanged sibling moved: %v -> %v", otherBefore, got)
	}
}

// TestPreexistingFilesGetGFIDsAtFirstMount mounts a brick that already
// holds data: everything is indexed, and hard links made before the mount
// share one gfid.
func TestPreexistingFilesGetGFIDsAtFirstMount(t *testing.T) {
	f := newFixture(t)
	must(t, os.MkdirAll(f.b("old/dir"), 0o755))
	writeFile(t, f.b("old/dir/file"), "before replfs")
	must(t, os.Link(f.b("old/dir/file"), f.b("old/twin")))
	must(t, os.Symlink("dir/file", f.b("old/sym")))
	must(t, syscall.Mkfifo(f.b("old/fifo"), 0o644))
	f.mount(t)
	if inspectGFID(t, f.m("old/dir/file")) != inspectGFID(t, f.m("old/twin")) {
		t.Error("hard links made before the first mount got different gfids")
	}
	var st syscall.Stat_t
	must(t, syscall.Stat(f.m("old/twin"), &st))
	if st.Nlink != 2 {
		t.Errorf("nlink through mount = %d, want 2", st.Nlink)
	}
	checkIndexExact(t, f.Brick)
	b, err := os.ReadFile(f.m("old/sym"))
	if err != nil || string(b) != "before replfs" {
		t.Errorf("read through symlink: %q %v", b, err)
	}
}

// TestForegroundMountUnmountsOnSIGTERM runs "replfs mount -f" and stops it
// with SIGTERM: the mount goes away and the journal is sealed.
func TestForegroundMountUnmountsOnSIGTERM(t *testing.T) {
	requireFUSE(t)
	f := newFixture(t)
	cmd := exec.Command(replfsBin, "mount", "-f", f.Brick, f.Mnt)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		f.unmountQuiet(t)
	})
	waitFor(t, 10*time.Second, "foreground mount", func() bool { return isMounted(f.Mnt) })
	writeFile(t, f.m("fg"), "1")
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("foreground daemon exited with %v: %s", err, stderr.String())
	}
	if isMounted(f.Mnt) {
		t.Fatal("still mounted after SIGTERM")
	}
	if opens, _ := filepath.Glob(f.b(".replfs/journal/*.open")); len(opens) > 0 {
		for _, o := range opens {
			if fi, _ := os.Stat(o); fi != nil && fi.Size() > 8 {
				t.Errorf("journal segment %s not sealed after clean shutdown", o)
			}
		}
	}
	if !strings.Contains(stderr.String(), "mounted") {
		t.Errorf("foreground mode logged nothing to stderr: %q", stderr.String())
	}
}

// TestDataOpsThroughOpenFilesAreJournaled covers fallocate,
// copy_file_range and lseek(SEEK_DATA) through the mount: they work, and
// the changed files get D records.
func TestDataOpsThroughOpenFilesAreJournaled(t *testing.T) {
	f := newFixture(t)
	f.mount(t)
	writeFile(t, f.m("src"), strings.Repeat("abcdefgh", 4096))
	in, err := os.Open(f.m("src"))
	must(t, err)
	out, err := os.Create(f.m("dst"))
	must(t, err)
	must(t, unix.Fallocate(int(out.Fd()), 0, 0, 1<<16))
	offIn, offOut := int64(0), int64(0)
	n, err := unix.CopyFileRange(int(in.Fd()), &offIn, int(out.Fd()), &offOut, 32768, 0)
	must(t, err)
	if n != 32768 {
		t.Fatalf("copy_file_range copied %d bytes", n)
	}
	if off, err := unix.Seek(int(out.Fd()), 0, unix.SEEK_DATA); err != nil || off != 0 {
		t.Errorf("SEEK_DATA = %d, %v", off, err)
	}
	must(t, out.Close())
	must(t, in.Close())
	b, err := os.ReadFile(f.b("dst"))
	must(t, err)
	if len(b) != 1<<16 || string(b[:32768]) != strings.Repeat("abcdefgh", 4096) {
		t.Errorf("dst in the brick: %d bytes, wrong content", len(b))
	}
	g := gfidAt(t, f.b("dst")).String()
	f.unmount(t)
	found := false
	for _, r := range dumpJournal(t, f.Brick) {
		if r.Kind == "D" && r.GFID == g {
			found = true
		}
	}
	if !found {
		t.Error("no D record for the file written by fallocate/copy_file_range")
	}
}
