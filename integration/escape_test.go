package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/integration/treecmp"
	"github.com/replfs/replfs/internal/gfid"
)

// The attacker of these tests: an unprivileged user of an allow_other
// mount, with a supplementary group to give things to.
const (
	attackerUID   = 12345
	attackerGID   = 12345
	attackerGroup = 12346

	attackerGroupS = "12346"
)

// rootPointerUp is a symlink target that reads, to a replicator parsing
// gfid-index pointers ("../../xx/yy/<parent gfid>/<name>"), as "the
// entry named .. of the root": the directory above the mirror.
const rootPointerUp = "../../00/00/00000000-0000-0000-0000-000000000001/.."

// pointerUp is the same kind of target naming directory g's "..".
func pointerUp(g gfid.GFID) string {
	s := g.String()
	return "../../" + s[0:2] + "/" + s[2:4] + "/" + s + "/.."
}

// asUser runs a shell script as uid/gid with the supplementary groups.
func asUser(t testing.TB, uid, gid uint32, groups []uint32, dir, script string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-ec", script)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("as uid %d: %s: %v\n%s", uid, script, err, out.String())
	}
}

// asAttacker runs script as the unprivileged attacker, in dir.
func asAttacker(t testing.TB, dir, script string) {
	t.Helper()
	asUser(t, attackerUID, attackerGID, []uint32{attackerGroup}, dir, script)
}

// victimFixture is a brick and mountpoint the attacker can write to, and
// a victim directory V holding the mirror two levels down, at
// V/inner/mirror, beside content worth protecting in V and V/inner, and an
// outside directory O. All of them sit in the fixture's root, whose
// snapshot (the brick, the mountpoint and the mirror left out) shows a
// write that escapes the mirror by one level (to V/inner), two (to V) or
// three (to the root).
type victimFixture struct {
	*fixture
	Victim  string // V
	Mirror  string // V/inner/mirror
	Outside string // O
}

// mirrorRel is the mirror's path inside the fixture's root, skipped by
// snapshots.
const mirrorRel = "victim/inner/mirror"

// victimTimes are the known times set on every entry of the victim.
var victimTimes = []unix.Timespec{
	{Sec: 1_000_000_000, Nsec: 111},   // atime
	{Sec: 1_100_000_000, Nsec: 222},   // mtime
	{Sec: 1_200_000_000, Nsec: 333},   // mtime of the directories
	{Sec: 1_300_000_000, Nsec: 44444}, // a mtime for the outside dir
}

func newVictimFixture(t testing.TB) *victimFixture {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users and own files as root")
	}
	requireFUSE(t)
	f := newFixture(t)
	// t.TempDir makes its directories 0700: let the attacker reach the mount.
	must(t, os.Chmod(f.Root, 0o755))
	must(t, os.Chmod(filepath.Dir(f.Root), 0o755))
	must(t, os.Chmod(f.Brick, 0o777))
	must(t, os.Chmod(f.Mnt, 0o777))
	v := &victimFixture{fixture: f, Victim: filepath.Join(f.Root, "victim"), Outside: filepath.Join(f.Root, "outside")}
	v.Mirror = filepath.Join(f.Root, mirrorRel)
	must(t, os.MkdirAll(v.Mirror, 0o755))
	must(t, os.MkdirAll(filepath.Join(v.Outside, "sub"), 0o755))
	protect(t, filepath.Join(v.Outside, "sub"), "deep")
	protect(t, v.Outside, "file1")
	protect(t, v.Outside, "file2")
	protect(t, filepath.Join(v.Victim, "inner"), "keep2")
	protect(t, v.Victim, "keep")
	protect(t, f.Root, "keep0")
	return v
}

// protect gives dir a file worth protecting (mode 0640, owner 0:0, an
// xattr user.k=v, known times), then gives dir itself an xattr, mode 0755
// and known times.
func protect(t testing.TB, dir, name string) {
	t.Helper()
	p := filepath.Join(dir, name)
	must(t, os.WriteFile(p, []byte("precious content of "+name+"\n"), 0o640))
	must(t, os.Chmod(p, 0o640))
	must(t, os.Lchown(p, 0, 0))
	must(t, xattr.LSet(p, "user.k", []byte("v")))
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, victimTimes[:2], unix.AT_SYMLINK_NOFOLLOW))
	must(t, os.Chmod(dir, 0o755))
	must(t, os.Lchown(dir, 0, 0))
	must(t, xattr.LSet(dir, "user.k", []byte("v")))
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, dir, []unix.Timespec{victimTimes[0], victimTimes[2]}, unix.AT_SYMLINK_NOFOLLOW))
}

// snapshot records everything in the fixture's root but the brick, the
// mountpoint and the mirror.
func (v *victimFixture) snapshot(t testing.TB) treeSnap {
	t.Helper()
	return snapshotTree(t, v.Root, "brick", "mnt", mirrorRel)
}

// checkpointed sets a checkpoint on the mount and waits (15 s at most)
// until every target has it. A target reporting failures may never
// complete it: that is logged, not fatal; what the mirror holds is judged
// by the caller.
func checkpointed(t testing.TB, mnt string) {
	t.Helper()
	if r := run(t, "checkpoint", mnt); r.code != 0 {
		t.Fatalf("replfs checkpoint: exit %d: %s", r.code, r.stderr)
	}
	if r := run(t, "status", mnt, "--wait-checkpoint", "--timeout", "15s"); r.code != 0 {
		t.Logf("checkpoint not completed (exit %d): %s%s", r.code, r.stdout, r.stderr)
	}
}

// expectSymlinkOnMirror checks that the attacker's symlink reached the
// mirror as the symlink it is, with the same target.
func expectSymlinkOnMirror(t testing.TB, mirror, rel, target string) {
	t.Helper()
	got, err := os.Readlink(filepath.Join(mirror, rel))
	if err != nil {
		t.Errorf("mirror lacks the symlink %s: %v", rel, err)
		return
	}
	if got != target {
		t.Errorf("mirror symlink %s -> %q, want %q", rel, got, target)
	}
}

// TestEscapeSymlinkChgrpLeavesVictimUnchanged: an unprivileged user makes
// a symlink whose target looks like a gfid-index directory pointer to the
// root's "..", then changes its group and times. Replicating the symlink
// and those changes must touch the symlink on the mirror, never the
// directory above the mirror.
func TestEscapeSymlinkChgrpLeavesVictimUnchanged(t *testing.T) {
	v := newVictimFixture(t)
	before := v.snapshot(t)
	v.mount(t, "allow_other", "rollover=100ms", "mirror="+v.Mirror)
	sh(t, v.Mnt, `mkdir -p d && echo base > d/f`)
	converge(t, v.Brick, v.Mirror, 20*time.Second)

	asAttacker(t, v.Mnt, "ln -s "+rootPointerUp+" evil")
	checkpointed(t, v.Mnt)
	asAttacker(t, v.Mnt, "chgrp -h "+attackerGroupS+" evil && touch -h -d '2002-02-02 02:02:02' evil")
	checkpointed(t, v.Mnt)

	assertSameSnapshot(t, before, v.snapshot(t))
	expectSymlinkOnMirror(t, v.Mirror, "evil", rootPointerUp)
	converge(t, v.Brick, v.Mirror, 10*time.Second)
}

// TestEscapeSymlinkChainLeavesVictimUnchanged: further symlinks name the
// previous one's gfid as their "parent", so that a walk of pointers climbs
// two and three levels above the mirror.
func TestEscapeSymlinkChainLeavesVictimUnchanged(t *testing.T) {
	v := newVictimFixture(t)
	before := v.snapshot(t)
	v.mount(t, "allow_other", "rollover=100ms", "mirror="+v.Mirror)
	asAttacker(t, v.Mnt, "ln -s "+rootPointerUp+" evil")
	chain := pointerUp(gfidAt(t, v.b("evil")))
	asAttacker(t, v.Mnt, "ln -s "+chain+" a")
	chain2 := pointerUp(gfidAt(t, v.b("a")))
	asAttacker(t, v.Mnt, "ln -s "+chain2+" b")
	checkpointed(t, v.Mnt)
	asAttacker(t, v.Mnt, "chgrp -h "+attackerGroupS+" a b evil && touch -h -d '2003-03-03 03:03:03' a b evil")
	checkpointed(t, v.Mnt)

	assertSameSnapshot(t, before, v.snapshot(t))
	expectSymlinkOnMirror(t, v.Mirror, "evil", rootPointerUp)
	expectSymlinkOnMirror(t, v.Mirror, "a", chain)
	expectSymlinkOnMirror(t, v.Mirror, "b", chain2)
	converge(t, v.Brick, v.Mirror, 10*time.Second)
}

// attack lets the attacker make, through the mount, the symlink evil and
// a symlink a naming evil's gfid, with their group and times changed. It
// returns a's target.
func attack(t *testing.T, v *victimFixture) (chain string) {
	t.Helper()
	asAttacker(t, v.Mnt, "ln -s "+rootPointerUp+" evil")
	chain = pointerUp(gfidAt(t, v.b("evil")))
	asAttacker(t, v.Mnt, "ln -s "+chain+" a && chgrp -h "+attackerGroupS+" evil a && touch -h -d '2004-04-04 04:04:04' evil a")
	return chain
}

// TestEscapeSymlinkBeforeFirstSyncLeavesVictimUnchanged: the symlinks
// were in the brick before the mirror was added: the first sync (a hybrid
// crawl) copies them without touching what is above the mirror.
func TestEscapeSymlinkBeforeFirstSyncLeavesVictimUnchanged(t *testing.T) {
	v := newVictimFixture(t)
	before := v.snapshot(t)
	v.mount(t, "allow_other", "rollover=100ms")
	sh(t, v.Mnt, `mkdir -p d && echo base > d/f`)
	chain := attack(t, v)
	v.unmount(t)

	v.mount(t, "allow_other", "rollover=100ms", "mirror="+v.Mirror)
	checkpointed(t, v.Mnt)

	assertSameSnapshot(t, before, v.snapshot(t))
	expectSymlinkOnMirror(t, v.Mirror, "evil", rootPointerUp)
	expectSymlinkOnMirror(t, v.Mirror, "a", chain)
	converge(t, v.Brick, v.Mirror, 10*time.Second)
}

// TestEscapeSymlinkRepairLeavesVictimUnchanged: the symlinks were made
// while the mirror was paused; `replfs repair` brings them to the mirror
// without touching what is above it.
func TestEscapeSymlinkRepairLeavesVictimUnchanged(t *testing.T) {
	v := newVictimFixture(t)
	before := v.snapshot(t)
	v.mount(t, "allow_other", "rollover=100ms", "mirror="+v.Mirror)
	sh(t, v.Mnt, `mkdir -p d && echo base > d/f`)
	converge(t, v.Brick, v.Mirror, 20*time.Second)
	if r := run(t, "pause", v.Mnt, v.Mirror); r.code != 0 {
		t.Fatalf("pause: exit %d: %s", r.code, r.stderr)
	}
	waitFor(t, 10*time.Second, "Paused", func() bool { return status(t, v.Mnt)[v.Mirror].State == "Paused" })
	chain := attack(t, v)

	r := run(t, "repair", v.Brick, v.Mirror, "-q")
	t.Logf("repair: exit %d: %s%s", r.code, r.stdout, r.stderr)

	assertSameSnapshot(t, before, v.snapshot(t))
	expectSymlinkOnMirror(t, v.Mirror, "evil", rootPointerUp)
	expectSymlinkOnMirror(t, v.Mirror, "a", chain)
	if d := diffs(t, v.Brick, v.Mirror); len(d) != 0 {
		t.Errorf("after repair the mirror differs from the brick:\n%s", treecmp.Report(d, 20))
	}
	if r.code != 0 {
		t.Errorf("repair exit %d, want 0 (the mirror ends in sync)", r.code)
	}
}

// runWithin runs the replfs binary, killing it after d: a daemon that
// hangs on a tampered mirror must not hang the test.
func runWithin(t testing.TB, d time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, replfsBin, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("replfs %v did not return within %s", args, d)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run replfs %v: %v", args, err)
	}
	return result{so.String(), se.String(), code}
}

// statusWithin is status, failing the test when the daemon does not answer.
func statusWithin(t testing.TB, mnt string) map[string]targetStatus {
	t.Helper()
	return statusRows(t, runWithin(t, 10*time.Second, "status", "--json", mnt))
}

// settled sets a checkpoint and waits (15 s at most) until the target has
// it, or has given up on something: it is Faulty or counts failures. It
// returns the last status row.
func settled(t testing.TB, mnt, target string) targetStatus {
	t.Helper()
	if r := runWithin(t, 10*time.Second, "checkpoint", mnt); r.code != 0 {
		t.Fatalf("replfs checkpoint: exit %d: %s", r.code, r.stderr)
	}
	var st targetStatus
	deadline := time.Now().Add(15 * time.Second)
	for {
		st = statusWithin(t, mnt)[target]
		if st.CheckpointCompleted || st.State == "Faulty" || st.Failures > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Logf("target neither completed the checkpoint nor reported a failure within 15s: %+v", st)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Let a retry after a failure run too: what it does must not reach
	// outside either.
	time.Sleep(300 * time.Millisecond)
	return st
}

// mountOrRefused mounts like fixture.mount, but a mount that refuses the
// tampered mirror (exit 1 with a reason) is an acceptable outcome: it
// reports false.
func (v *victimFixture) mountOrRefused(t testing.TB, opts ...string) bool {
	t.Helper()
	r := runWithin(t, 20*time.Second, "mount", v.Brick, v.Mnt, "-o", strings.Join(opts, ","))
	if r.code != 0 {
		if isMounted(v.Mnt) {
			t.Fatalf("replfs mount failed (exit %d) yet the mount is there: %s", r.code, r.stderr)
		}
		t.Logf("mount refused the tampered mirror (exit %d): %s%s", r.code, r.stdout, r.stderr)
		return false
	}
	t.Cleanup(func() { v.unmountQuiet(t) })
	return true
}

// replaceBySymlink puts a symlink to target where p was (removed with
// everything below it).
func replaceBySymlink(t testing.TB, p, target string) {
	t.Helper()
	must(t, os.RemoveAll(p))
	must(t, os.Symlink(target, p))
}

// moveIndexOutside moves the mirror's gfid index to O and leaves a
// symlink to it in its place: a replicator following it still finds every
// entry, and writes to O.
func moveIndexOutside(t *testing.T, v *victimFixture) {
	t.Helper()
	index := filepath.Join(v.Mirror, gfid.IndexDir)
	must(t, os.RemoveAll(v.Outside))
	must(t, os.Rename(index, v.Outside))
	protect(t, v.Outside, "keep")
	must(t, os.Symlink(v.Outside, index))
}

// pointDirUp rewrites the mirror's index pointer of directory rel (of the
// brick root) to name the root's "..": the directory above the mirror.
func pointDirUp(t *testing.T, v *victimFixture, rel string) {
	t.Helper()
	ip := filepath.Join(v.Mirror, gfidAt(t, v.b(rel)).IndexPath())
	must(t, os.Remove(ip))
	must(t, os.Symlink(rootPointerUp, ip))
}

// TestTamperedMirrorNeverWritesOutside: someone who can write to a mirror
// (not to the brick) replaces a directory of it, or of its .replfs state,
// by a symlink to somewhere else, or rewrites a directory pointer of its
// gfid index to name the directory above the mirror. Whatever replication
// does next, it must neither write, remove nor change attributes outside
// the mirror; the daemon may give up on the target (Faulty, failures) but
// must keep answering and unmount.
func TestTamperedMirrorNeverWritesOutside(t *testing.T) {
	cases := []struct {
		name string
		// live: tampered while the mount runs, with the target paused;
		// otherwise between an unmount and a remount.
		live    bool
		tamper  func(t *testing.T, v *victimFixture)
		trigger string // shell run in the mount once the mirror is tampered with
	}{
		{
			name: "dir_symlink_live", live: true,
			tamper: func(t *testing.T, v *victimFixture) {
				replaceBySymlink(t, filepath.Join(v.Mirror, "d"), v.Outside)
			},
			trigger: "rm d/file1 && echo new > d/new",
		},
		{
			name: "dir_symlink_remount",
			tamper: func(t *testing.T, v *victimFixture) {
				replaceBySymlink(t, filepath.Join(v.Mirror, "d"), v.Outside)
			},
			trigger: "rm d/file1 && echo new > d/new",
		},
		{
			name: "limbo_symlink", live: true,
			tamper: func(t *testing.T, v *victimFixture) {
				replaceBySymlink(t, filepath.Join(v.Mirror, ".replfs/limbo"), v.Outside)
			},
			trigger: "echo x > d/file2 && mv d/file2 d/file1 && mkdir e && mv e d/e",
		},
		{
			name: "limbo_symlink_remount",
			tamper: func(t *testing.T, v *victimFixture) {
				replaceBySymlink(t, filepath.Join(v.Mirror, ".replfs/limbo"), v.Outside)
			},
			trigger: "echo x > new",
		},
		{
			name: "tmp_symlink",
			tamper: func(t *testing.T, v *victimFixture) {
				replaceBySymlink(t, filepath.Join(v.Mirror, ".replfs/tmp"), v.Outside)
			},
			trigger: "echo rewritten, longer > d/file1",
		},
		{
			name: "tmp_symlink_live", live: true,
			tamper: func(t *testing.T, v *victimFixture) {
				replaceBySymlink(t, filepath.Join(v.Mirror, ".replfs/tmp"), v.Outside)
			},
			trigger: "echo rewritten, longer > d/file1",
		},
		{
			name: "gfid_symlink",
			tamper: func(t *testing.T, v *victimFixture) {
				moveIndexOutside(t, v)
			},
			trigger: "mkdir e && echo n > e/n && echo rewritten, longer > d/file1 && rm d/file2",
		},
		{
			name: "gfid_symlink_live", live: true,
			tamper: func(t *testing.T, v *victimFixture) {
				moveIndexOutside(t, v)
			},
			trigger: "mkdir e && echo n > e/n && echo rewritten, longer > d/file1 && rm d/file2",
		},
		{
			name: "dir_pointer_up",
			tamper: func(t *testing.T, v *victimFixture) {
				pointDirUp(t, v, "d")
			},
			trigger: "echo n > d/new && mkdir d/sub && chmod 0700 d",
		},
		{
			name: "dir_pointer_up_live", live: true,
			tamper: func(t *testing.T, v *victimFixture) {
				pointDirUp(t, v, "d")
			},
			// A directory removed first drops what the replicator
			// remembers of directory paths: d's is read from the index.
			trigger: "rmdir spare && echo n > d/new && mkdir d/sub && chmod 0700 d",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newVictimFixture(t)
			opts := []string{"rollover=100ms", "mirror=" + v.Mirror}
			v.mount(t, opts...)
			sh(t, v.Mnt, `mkdir d spare && chmod 0750 d && echo one > d/file1 && echo two > d/file2`)
			converge(t, v.Brick, v.Mirror, 20*time.Second)
			if tc.live {
				if r := run(t, "pause", v.Mnt, v.Mirror); r.code != 0 {
					t.Fatalf("pause: exit %d: %s", r.code, r.stderr)
				}
				waitFor(t, 10*time.Second, "Paused", func() bool { return statusWithin(t, v.Mnt)[v.Mirror].State == "Paused" })
			} else {
				v.unmount(t)
			}
			tc.tamper(t, v)
			before := v.snapshot(t)

			if tc.live {
				sh(t, v.Mnt, tc.trigger)
				if r := runWithin(t, 10*time.Second, "resume", v.Mnt, v.Mirror); r.code != 0 {
					t.Fatalf("resume: exit %d: %s", r.code, r.stderr)
				}
			} else if !v.mountOrRefused(t, opts...) {
				assertSameSnapshot(t, before, v.snapshot(t))
				return
			} else {
				sh(t, v.Mnt, tc.trigger)
			}
			st := settled(t, v.Mnt, v.Mirror)
			t.Logf("target after the trigger: state %s, failures %d, last error %q", st.State, st.Failures, st.LastError)

			assertSameSnapshot(t, before, v.snapshot(t))
			if r := runWithin(t, 20*time.Second, "umount", v.Mnt); r.code != 0 {
				t.Errorf("replfs umount: exit %d: %s", r.code, r.stderr)
			}
			if isMounted(v.Mnt) {
				t.Error("still mounted after replfs umount")
			}
		})
	}
}
