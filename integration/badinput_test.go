package integration

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replfs/replfs/integration/treecmp"
)

// snapshot lists every path under dir with its size, mode and mtime.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		fmt.Fprintf(&b, "%s %d %v %d\n", p, fi.Size(), fi.Mode(), fi.ModTime().UnixNano())
		return nil
	})
	return b.String()
}

// sameTree reports the lines that differ between two snapshots.
func sameTree(t *testing.T, before, after string) {
	t.Helper()
	b, a := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(before, "\n") {
		b[l] = true
	}
	for _, l := range strings.Split(after, "\n") {
		a[l] = true
		if !b[l] {
			t.Errorf("changed or new: %s", l)
		}
	}
	for l := range b {
		if !a[l] {
			t.Errorf("gone or changed: %s", l)
		}
	}
}

func expectOneLineError(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d (stderr %q)", r.code, code, r.stderr)
	}
	msg := strings.TrimSpace(r.stderr)
	if strings.Count(msg, "\n") != 0 {
		t.Errorf("error is not one line: %q", msg)
	}
	if !strings.Contains(msg, want) {
		t.Errorf("error %q does not say %q", msg, want)
	}
}

func TestBadMountInputGivesClearErrorAndChangesNothing(t *testing.T) {
	requireFUSE(t)
	f := newFixture(t)
	writeFile(t, f.b("keep"), "data")
	file := filepath.Join(f.Root, "plainfile")
	writeFile(t, file, "x")
	before := snapshot(t, f.Root)

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown option", []string{"mount", f.Brick, f.Mnt, "-o", "rw,frobnicate"}, 2, `unknown mount option "frobnicate"`},
		{"bad duration", []string{"mount", f.Brick, f.Mnt, "-o", "rollover=soon"}, 2, `"soon" is not a duration`},
		{"missing brick", []string{"mount", filepath.Join(f.Root, "nope"), f.Mnt}, 1, "does not exist"},
		{"brick is a file", []string{"mount", file, f.Mnt}, 1, "is not a directory"},
		{"missing mountpoint", []string{"mount", f.Brick, filepath.Join(f.Root, "nomnt")}, 1, "does not exist"},
		{"mountpoint is a file", []string{"mount", f.Brick, file}, 1, "is not a directory"},
		{"brick inside mountpoint", []string{"mount", f.Mnt, f.Root}, 1, "brick " + f.Mnt + " is inside the mountpoint " + f.Root},
		{"mountpoint is the brick", []string{"mount", f.Brick, f.Brick + "/"}, 1, "mountpoint " + f.Brick + " is inside the brick " + f.Brick + " (the same directory)"},
		{"one argument", []string{"mount", f.Brick}, 2, "needs BRICK and MOUNTPOINT"},
		{"dump of a non-brick", []string{"journal", "dump", f.Mnt}, 1, "is not a replfs brick"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectOneLineError(t, run(t, tc.args...), tc.code, tc.want)
		})
	}
	sameTree(t, before, snapshot(t, f.Root))
}

func TestMountpointInUseAndBrickAlreadyMounted(t *testing.T) {
	f := newFixture(t)
	f.mount(t)
	writeFile(t, f.m("x"), "1")

	// A second brick onto the busy mountpoint.
	other := filepath.Join(f.Root, "brick2")
	must(t, os.Mkdir(other, 0o755))
	expectOneLineError(t, run(t, "mount", other, f.Mnt), 1, "already in use")
	if ents, _ := os.ReadDir(other); len(ents) != 0 {
		t.Errorf("failed mount wrote into the other brick: %v", ents)
	}

	// The same brick at a second mountpoint.
	mnt2 := filepath.Join(f.Root, "mnt2")
	must(t, os.Mkdir(mnt2, 0o755))
	before := snapshot(t, filepath.Join(f.Brick, ".replfs/journal"))
	expectOneLineError(t, run(t, "mount", f.Brick, mnt2), 1, "already mounted by another replfs")
	if isMounted(mnt2) {
		syscall.Unmount(mnt2, syscall.MNT_DETACH)
		t.Fatal("brick mounted twice")
	}
	if after := snapshot(t, filepath.Join(f.Brick, ".replfs/journal")); after != before {
		t.Error("refused mount changed the journal")
	}
}

func TestCorruptJournalRefusesMount(t *testing.T) {
	f := newFixture(t)
	f.mount(t, "rollover=50ms")
	for i := 0; i < 20; i++ {
		writeFile(t, f.m(fmt.Sprintf("f%d", i)), "x")
	}
	f.unmount(t)
	segs, _ := filepath.Glob(f.b(".replfs/journal/*.rjl"))
	if len(segs) == 0 {
		t.Fatal("no sealed segment")
	}
	seg := segs[0]
	data, err := os.ReadFile(seg)
	must(t, err)
	data[len(data)/2] ^= 0xff // a flipped byte inside a sealed segment
	must(t, os.WriteFile(seg, data, 0o600))
	before := snapshot(t, f.Brick)

	r := run(t, "mount", f.Brick, f.Mnt)
	if r.code == 0 {
		f.unmountQuiet(t)
		t.Fatal("mounted a brick with a corrupt journal")
	}
	expectOneLineError(t, r, 1, "corrupt")
	if !strings.Contains(r.stderr, filepath.Base(seg)) {
		t.Errorf("error does not name the segment %s: %q", filepath.Base(seg), r.stderr)
	}
	sameTree(t, before, snapshot(t, f.Brick))
	expectOneLineError(t, run(t, "journal", "dump", f.Brick), 1, "corrupt")
}

// noPanic fails the test when a command's output shows a Go crash.
func noPanic(t *testing.T, r result) {
	t.Helper()
	for _, s := range []string{"panic:", "fatal error:", "goroutine "} {
		if strings.Contains(r.stderr, s) {
			t.Errorf("replfs crashed: %q", r.stderr)
		}
	}
}

// refusedMount runs a mount that must fail at once with want, leave
// nothing mounted and change nothing under root.
func refusedMount(t *testing.T, f *fixture, want string, opts ...string) {
	t.Helper()
	cleanupStuck(t, f.Brick, f.Mnt)
	before := snapshot(t, f.Root)
	args := []string{"mount", f.Brick, f.Mnt}
	if len(opts) > 0 {
		args = append(args, "-o", strings.Join(opts, ","))
	}
	r := runTimeout(t, 20*time.Second, args...)
	expectOneLineError(t, r, 1, want)
	noPanic(t, r)
	if isMounted(f.Mnt) {
		t.Fatal("mounted despite the error")
	}
	sameTree(t, before, snapshot(t, f.Root))
}

// TestBrokenInfoFilesFailTheMountClearly: brick.json and target.json that
// are a fifo (reading one blocks), a symlink (to /dev/zero: reading it
// never ends) or far larger than replfs writes them.
func TestBrokenInfoFilesFailTheMountClearly(t *testing.T) {
	requireFUSE(t)
	for _, k := range []struct {
		name string
		make func(t *testing.T, p string)
		want string
	}{
		{"fifo", func(t *testing.T, p string) { must(t, syscall.Mkfifo(p, 0o600)) }, "is not a regular file (fifo)"},
		{"symlink to /dev/zero", func(t *testing.T, p string) { must(t, os.Symlink("/dev/zero", p)) }, "is a symlink"},
		{"oversized", func(t *testing.T, p string) {
			writeFile(t, p, `{"format":1,"pad":"`+strings.Repeat("x", 70<<10)+`"}`)
		}, "is larger than 64 KiB"},
	} {
		t.Run("brick.json is "+k.name, func(t *testing.T) {
			f := newFixture(t)
			must(t, os.Mkdir(f.b(".replfs"), 0o700))
			p := f.b(".replfs/brick.json")
			k.make(t, p)
			refusedMount(t, f, p+" "+k.want)
		})
		t.Run("target.json is "+k.name, func(t *testing.T) {
			f := newFixture(t)
			mir := f.mirrorDir(t, "mirror")
			must(t, os.Mkdir(filepath.Join(mir, ".replfs"), 0o700))
			p := filepath.Join(mir, ".replfs/target.json")
			k.make(t, p)
			refusedMount(t, f, "mirror "+mir+": "+p+" "+k.want, "mirror="+mir)
		})
	}
	t.Run("mirror root is a symlink", func(t *testing.T) {
		f := newFixture(t)
		mir := f.mirrorDir(t, "mirror")
		link := filepath.Join(f.Root, "link")
		must(t, os.Symlink(mir, link))
		refusedMount(t, f, "mirror "+link+" is a symlink (to "+mir+")", "mirror="+link)
	})
}

// TestMirrorStateDirsThatAreNotDirectoriesAreRefused: a mirror whose
// .replfs, or one of the directories replfs keeps in it, is a symlink or
// a file is refused at mount, and nothing a symlink leads to is touched
// (a symlinked tmp would otherwise have its target emptied).
func TestMirrorStateDirsThatAreNotDirectoriesAreRefused(t *testing.T) {
	f := newFixture(t)
	m0 := f.mirrorDir(t, "m0")
	f.mount(t, "rollover=100ms", "mirror="+m0)
	sh(t, f.Mnt, "echo x > f && mkdir d && echo y > d/g && rm d/g")
	converge(t, f.Brick, m0, 20*time.Second)
	f.unmount(t)
	outside := filepath.Join(f.Root, "outside")
	must(t, os.MkdirAll(filepath.Join(outside, "sub"), 0o755))
	writeFile(t, filepath.Join(outside, "precious"), "keep me")
	writeFile(t, filepath.Join(outside, "sub/also"), "keep me too")
	for _, rel := range []string{".replfs", ".replfs/gfid", ".replfs/tmp", ".replfs/limbo"} {
		for _, kind := range []string{"symlink", "regular file"} {
			t.Run(rel+" is a "+kind, func(t *testing.T) {
				mir := filepath.Join(f.Root, strings.NewReplacer("/", "-", " ", "-", ".", "").Replace("m-"+rel+"-"+kind))
				sh(t, f.Root, "cp -a "+m0+" "+mir)
				t.Cleanup(func() { os.RemoveAll(mir) })
				p := filepath.Join(mir, rel)
				switch {
				case kind == "regular file":
					must(t, os.RemoveAll(p))
					writeFile(t, p, "not a directory")
				case rel == ".replfs":
					// A whole, valid state, only reached through a link.
					must(t, os.Rename(p, mir+"-state"))
					t.Cleanup(func() { os.RemoveAll(mir + "-state") })
					must(t, os.Symlink(mir+"-state", p))
				default:
					must(t, os.RemoveAll(p))
					must(t, os.Symlink(outside, p))
				}
				refusedMount(t, f, "mirror "+mir+": "+p+" is a "+kind, "mirror="+mir)
			})
		}
	}
	if b, err := os.ReadFile(filepath.Join(outside, "precious")); err != nil || string(b) != "keep me" {
		t.Errorf("outside/precious: %q, %v", b, err)
	}
}

// TestStateFileThatIsAFifoDoesNotHangTheMount: an unreadable state file
// costs a hybrid crawl, never a hung daemon.
func TestStateFileThatIsAFifoDoesNotHangTheMount(t *testing.T) {
	f := newFixture(t)
	mir := f.mirrorDir(t, "mirror")
	f.mount(t, "rollover=100ms", "mirror="+mir)
	writeFile(t, f.m("a"), "1")
	converge(t, f.Brick, mir, 20*time.Second)
	f.unmount(t)
	states, _ := filepath.Glob(f.b(".replfs/state/*.json"))
	if len(states) != 1 {
		t.Fatalf("state files: %v", states)
	}
	must(t, os.Remove(states[0]))
	must(t, syscall.Mkfifo(states[0], 0o600))
	cleanupStuck(t, f.Brick, f.Mnt)
	r := runTimeout(t, 20*time.Second, "mount", f.Brick, f.Mnt, "-o", "rollover=100ms,mirror="+mir)
	noPanic(t, r)
	if r.code != 0 {
		t.Fatalf("mount: exit %d: %s", r.code, r.stderr)
	}
	t.Cleanup(func() { f.unmountQuiet(t) })
	writeFile(t, f.m("b"), "2")
	converge(t, f.Brick, mir, 20*time.Second)
	if !strings.Contains(logWarnings(f.Brick), "is not a regular file (fifo)") {
		t.Errorf("no warning about the state file:\n%s", logWarnings(f.Brick))
	}
}

// TestCursorBeyondJournalEndIsCaughtUp: a state file whose cursor is past
// the journal's last record (edited, restored from elsewhere) must not
// stop replication while status says all is done: the worker warns, runs
// a hybrid crawl, and a checkpoint completes only once the mirror has
// every change.
func TestCursorBeyondJournalEndIsCaughtUp(t *testing.T) {
	f := newFixture(t)
	mir := f.mirrorDir(t, "mirror")
	f.mount(t, "rollover=100ms", "mirror="+mir)
	sh(t, f.Mnt, "echo a > a && mkdir d && echo b > d/b")
	converge(t, f.Brick, mir, 20*time.Second)
	f.unmount(t)
	states, _ := filepath.Glob(f.b(".replfs/state/*.json"))
	if len(states) != 1 {
		t.Fatalf("state files: %v", states)
	}
	var st map[string]any
	data, err := os.ReadFile(states[0])
	must(t, err)
	must(t, json.Unmarshal(data, &st))
	const huge = "1000000000000"
	st["cursor"] = json.Number(huge)
	data, err = json.Marshal(st)
	must(t, err)
	must(t, os.WriteFile(states[0], data, 0o600))

	f.mount(t, "rollover=100ms", "mirror="+mir)
	sh(t, f.Mnt, "echo c > c && echo more >> a && mv d d2 && echo e > d2/e && rm d2/b")
	if r := run(t, "checkpoint", f.Mnt); r.code != 0 {
		t.Fatalf("checkpoint: %s", r.stderr)
	}
	if r := run(t, "status", f.Mnt, "--wait-checkpoint", "--timeout", "60s"); r.code != 0 {
		t.Fatalf("status --wait-checkpoint: exit %d: %s%s\n%s", r.code, r.stdout, r.stderr, logWarnings(f.Brick))
	}
	if d := diffs(t, f.Brick, mir); len(d) != 0 {
		t.Fatalf("status says the checkpoint is complete, yet the mirror differs:\n%s", treecmp.Report(d, 20))
	}
	recs := dumpJournal(t, f.Brick)
	last := recs[len(recs)-1].Seq
	var rows []struct {
		Target string `json:"target"`
		State  string `json:"state"`
		Cursor uint64 `json:"cursor"`
	}
	r := run(t, "status", "--json", f.Mnt)
	must(t, json.Unmarshal([]byte(r.stdout), &rows))
	if len(rows) != 1 || rows[0].State != "Active" || rows[0].Cursor > last {
		t.Errorf("status %+v, journal's last record %d", rows, last)
	}
	warn := logWarnings(f.Brick)
	if !strings.Contains(warn, "ahead of the journal") || !strings.Contains(warn, `"cursor":`+huge) || !strings.Contains(warn, mir) {
		t.Errorf("no warning naming the target and its cursor:\n%s", warn)
	}
	// Replication goes on from the journal's real end.
	writeFile(t, f.m("later"), "x")
	converge(t, f.Brick, mir, 20*time.Second)
}

// TestBrickLockThatIsASymlinkIsRefused: replfs's own files in the brick's
// .replfs are never followed: a lock file that is a symlink would have
// the mount truncate whatever it leads to.
func TestBrickLockThatIsASymlinkIsRefused(t *testing.T) {
	f := newFixture(t)
	f.mount(t)
	f.unmount(t)
	victim := filepath.Join(f.Root, "victim")
	writeFile(t, victim, "keep me")
	lock := f.b(".replfs/run/lock")
	must(t, os.Remove(lock))
	must(t, os.Symlink(victim, lock))
	cleanupStuck(t, f.Brick, f.Mnt)
	r := runTimeout(t, 20*time.Second, "mount", f.Brick, f.Mnt)
	expectOneLineError(t, r, 1, lock+" is a symlink")
	if isMounted(f.Mnt) {
		t.Fatal("mounted despite the error")
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "keep me" {
		t.Errorf("the file the lock leads to was changed: %q, %v", b, err)
	}
}
