package integration

import (
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

	"github.com/replfs/replfs/integration/treecmp"
)

// mirrorDir makes an empty mirror directory beside the fixture's brick.
func (f *fixture) mirrorDir(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(f.Root, name)
	must(t, os.Mkdir(p, 0o755))
	return p
}

// diffs compares the brick (the reference) with a mirror by the
// independent tree comparer.
func diffs(t testing.TB, brick, mirror string) []treecmp.Diff {
	t.Helper()
	d, err := treecmp.Compare(brick, mirror, nil)
	if err != nil {
		t.Fatalf("compare %s %s: %v", brick, mirror, err)
	}
	return d
}

// converge waits until the mirror equals the brick.
func converge(t testing.TB, brick, mirror string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d := diffs(t, brick, mirror)
		if len(d) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mirror %s did not converge within %s:\n%s\ndaemon warnings:\n%s", mirror, timeout,
				treecmp.Report(d, 20), logWarnings(brick))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logWarnings returns the daemon's last warning and error log lines.
func logWarnings(brick string) string {
	data, _ := os.ReadFile(filepath.Join(brick, ".replfs/log/replfs.log"))
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) {
			out = append(out, l)
		}
	}
	if len(out) > 15 {
		out = out[len(out)-15:]
	}
	return strings.Join(out, "\n")
}

// targetStatus is a row of `replfs status --json`.
type targetStatus struct {
	Target              string `json:"target"`
	State               string `json:"state"`
	Crawl               string `json:"crawl"`
	Cursor              uint64 `json:"cursor"`
	Failures            uint64 `json:"failures"`
	LastError           string `json:"last_error"`
	BytesTransferred    uint64 `json:"bytes_transferred"`
	FilesTransferred    uint64 `json:"files_transferred"`
	CheckpointCompleted bool   `json:"checkpoint_completed"`
}

func status(t testing.TB, path string) map[string]targetStatus {
	t.Helper()
	return statusRows(t, run(t, "status", "--json", path))
}

// statusRows parses the output of replfs status --json by target.
func statusRows(t testing.TB, r result) map[string]targetStatus {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("replfs status: exit %d: %s", r.code, r.stderr)
	}
	var rows []targetStatus
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("status --json: %v: %q", err, r.stdout)
	}
	out := map[string]targetStatus{}
	for _, row := range rows {
		out[row.Target] = row
	}
	return out
}

func sh(t testing.TB, dir, script string) {
	t.Helper()
	cmd := exec.Command("sh", "-ec", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

// TestMirrorReceivesFoundationWorkload: every op of the foundation workload
// reaches the mirror, and the mirror equals the brick.
func TestMirrorReceivesFoundationWorkload(t *testing.T) {
	f := newFixture(t)
	mir := f.mirrorDir(t, "mirror")
	f.mount(t, "rollover=100ms", "mirror="+mir)
	sh(t, f.Mnt, `
mkdir -p d1/d2
printf hello > d1/d2/f
printf ' world' >> d1/d2/f
truncate -s 3 d1/d2/f
printf 0123456789 > t
chmod 0640 t
chown 1234:5678 t
touch -d '2001-02-03 04:05:06' t
setfattr -n user.color -v blue t
ln -s d1/d2/f sl
ln t hard
mv d1/d2/f d1/moved
mv d1 dir1
printf new > victim
mv t victim
printf gone > g
rm g
mkdir -p e/x
rmdir e/x
mknod fifo p
setfattr -x user.color victim
`)
	converge(t, f.Brick, mir, 20*time.Second)
	// The names the workload ended with, checked without the comparer.
	for _, p := range []string{"dir1/moved", "dir1/d2", "sl", "hard", "victim", "e", "fifo"} {
		if _, err := os.Lstat(filepath.Join(mir, p)); err != nil {
			t.Errorf("mirror lacks %s: %v", p, err)
		}
	}
	for _, p := range []string{"d1", "t", "g", "e/x"} {
		if _, err := os.Lstat(filepath.Join(mir, p)); err == nil {
			t.Errorf("mirror still has %s", p)
		}
	}
	if gfidAt(t, filepath.Join(mir, "dir1/moved")) != gfidAt(t, f.b("dir1/moved")) {
		t.Error("gfid differs between brick and mirror")
	}
	st := status(t, f.Mnt)[mir]
	if st.State != "Active" || st.Failures != 0 {
		t.Errorf("status after convergence: %+v", st)
	}
	// Each batch is summarized in the log with its counts per operation.
	log, _ := os.ReadFile(f.b(".replfs/log/replfs.log"))
	for _, op := range []string{`"RENAME":`, `"CREATE":`, `"UNLINK":`} {
		if !strings.Contains(string(log), op) {
			t.Errorf("no batch summary counts %s", op)
		}
	}
}

// makeTree writes n files spread over a deep tree under dir.
func makeTree(t testing.TB, dir string, n int) {
	t.Helper()
	for i := range n {
		d := filepath.Join(dir, fmt.Sprintf("l1-%d", i%7), fmt.Sprintf("l2-%d", i%13), fmt.Sprintf("l3-%d", i%5), "deep", "er")
		must(t, os.MkdirAll(d, 0o755))
		must(t, os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d", i)), []byte(strings.Repeat(fmt.Sprint(i), 1+i%300)), 0o644))
	}
}

// TestInitialSyncOfExistingBrick: a brick with 5,000 files in a deep tree,
// mounted with a new mirror, converges; so does one changed during the crawl.
func TestInitialSyncOfExistingBrick(t *testing.T) {
	for _, busy := range []bool{false, true} {
		t.Run(fmt.Sprintf("busy=%v", busy), func(t *testing.T) {
			f := newFixture(t)
			makeTree(t, f.Brick, 5000)
			mir := f.mirrorDir(t, "mirror")
			f.mount(t, "rollover=200ms", "mirror="+mir)
			if busy {
				// Change the tree while the hybrid crawl runs.
				sh(t, f.Mnt, `
for i in 1 2 3 4 5 6; do mv l1-$i/l2-3 l1-$i/l2-3-moved; done
rm -r l1-0/l2-1
for i in $(seq 1 200); do echo "$i" > l1-2/new-$i; done
echo rewritten > l1-3/l2-4/l3-0/deep/er/f00004
mkdir l1-9 && mv l1-5 l1-9/
`)
			}
			converge(t, f.Brick, mir, 60*time.Second)
		})
	}
}

// TestDirectoryRenameMovesWithoutCopy: a directory holding 1 GiB renamed on
// the brick is renamed on the mirror, not copied again.
func TestDirectoryRenameMovesWithoutCopy(t *testing.T) {
	f := newFixture(t)
	mir := f.mirrorDir(t, "mirror")
	f.mount(t, "rollover=200ms", "mirror="+mir)
	sh(t, f.Mnt, `mkdir -p big/sub && head -c 512M /dev/urandom > big/a && head -c 512M /dev/urandom > big/sub/b`)
	converge(t, f.Brick, mir, 90*time.Second)
	before := status(t, f.Mnt)[mir]
	if before.BytesTransferred < 1<<30 {
		t.Fatalf("transferred %d bytes for 1 GiB of new data", before.BytesTransferred)
	}
	sh(t, f.Mnt, `mv big renamed && mv renamed/sub renamed/sub2`)
	converge(t, f.Brick, mir, 30*time.Second)
	after := status(t, f.Mnt)[mir]
	if d := after.BytesTransferred - before.BytesTransferred; d != 0 {
		t.Fatalf("rename transferred %d bytes; want 0", d)
	}
}

// TestHardLinksStayLinkedOnMirror: hard links are hard links on the
// mirror, and a rewrite through one name shows under all.
func TestHardLinksStayLinkedOnMirror(t *testing.T) {
	f := newFixture(t)
	mir := f.mirrorDir(t, "mirror")
	f.mount(t, "rollover=100ms", "mirror="+mir)
	sh(t, f.Mnt, `mkdir d e && echo one > d/a && ln d/a e/b && ln d/a c`)
	converge(t, f.Brick, mir, 20*time.Second)
	sh(t, f.Mnt, `echo "two, longer" > e/b`)
	converge(t, f.Brick, mir, 20*time.Second)
	var sa, sb, sc syscall.Stat_t
	must(t, syscall.Lstat(filepath.Join(mir, "d/a"), &sa))
	must(t, syscall.Lstat(filepath.Join(mir, "e/b"), &sb))
	must(t, syscall.Lstat(filepath.Join(mir, "c"), &sc))
	if sa.Ino != sb.Ino || sa.Ino != sc.Ino {
		t.Fatalf("mirror names are not one inode: %d %d %d", sa.Ino, sb.Ino, sc.Ino)
	}
	for _, p := range []string{"d/a", "e/b", "c"} {
		data, err := os.ReadFile(filepath.Join(mir, p))
		must(t, err)
		if string(data) != "two, longer\n" {
			t.Errorf("mirror %s = %q", p, data)
		}
	}
}

// TestConflictResolvedToBrickVersion: a file made on the mirror by hand at
// a name the brick also uses (with another gfid) gives way to the brick's;
// the replicator never changes the brick.
func TestConflictResolvedToBrickVersion(t *testing.T) {
	f := newFixture(t)
	mir := f.mirrorDir(t, "mirror")
	f.mount(t, "rollover=100ms", "mirror="+mir)
	sh(t, f.Mnt, `mkdir d && echo base > d/keep`)
	converge(t, f.Brick, mir, 20*time.Second)
	// By hand on the mirror: a file and a directory where the brick will
	// put its own.
	writeFile(t, filepath.Join(mir, "d/clash"), "made on the mirror by hand")
	must(t, os.MkdirAll(filepath.Join(mir, "dclash/inner"), 0o755))
	writeFile(t, filepath.Join(mir, "dclash/inner/x"), "hand")
	before := snapshot(t, f.Brick)
	sh(t, f.Mnt, `echo brick > d/clash && mkdir dclash && echo b > dclash/y`)
	converge(t, f.Brick, mir, 20*time.Second)
	data, err := os.ReadFile(filepath.Join(mir, "d/clash"))
	must(t, err)
	if string(data) != "brick\n" {
		t.Fatalf("mirror d/clash = %q, want the brick's", data)
	}
	// The brick holds exactly what the user wrote, nothing of the mirror's.
	if data, _ := os.ReadFile(f.b("d/clash")); string(data) != "brick\n" {
		t.Errorf("brick d/clash = %q", data)
	}
	if _, err := os.Lstat(f.b("dclash/inner")); err == nil {
		t.Error("the mirror's hand-made directory reached the brick")
	}
	after := snapshot(t, f.Brick)
	if !strings.Contains(after, "dclash/y") || strings.Count(after, "\n")-strings.Count(before, "\n") < 2 {
		t.Errorf("brick snapshot before/after:\n%s\n%s", before, after)
	}
}

// TestMirrorOutageFaultyThenActive: a mirror renamed away is Faulty with
// the reason, then Active again when back, and converges; with a retention
// window shorter than the outage the hybrid crawl catches it up.
func TestMirrorOutageFaultyThenActive(t *testing.T) {
	for _, short := range []bool{false, true} {
		t.Run(fmt.Sprintf("short-retention=%v", short), func(t *testing.T) {
			f := newFixture(t)
			mir := f.mirrorDir(t, "mirror")
			opts := []string{"rollover=100ms", "mirror=" + mir}
			if short {
				opts = append(opts, "retention=500ms")
			}
			f.mount(t, opts...)
			sh(t, f.Mnt, `mkdir a && echo 1 > a/one`)
			converge(t, f.Brick, mir, 20*time.Second)
			away := mir + ".away"
			must(t, os.Rename(mir, away))
			sh(t, f.Mnt, `echo 2 > a/two && mv a/one a/uno && mkdir b && echo 3 > b/three && rm a/two`)
			waitFor(t, 20*time.Second, "status Faulty", func() bool { return status(t, f.Mnt)[mir].State == "Faulty" })
			if st := status(t, f.Mnt)[mir]; !strings.Contains(st.LastError, mir) {
				t.Errorf("faulty status does not say why: %+v", st)
			}
			if short {
				time.Sleep(3 * time.Second) // past the retention window: segments go
			}
			must(t, os.Rename(away, mir))
			waitFor(t, 60*time.Second, "status Active", func() bool { return status(t, f.Mnt)[mir].State == "Active" })
			converge(t, f.Brick, mir, 30*time.Second)
			if short {
				log, _ := os.ReadFile(f.b(".replfs/log/replfs.log"))
				if !strings.Contains(string(log), "journal gap") {
					t.Error("retention shorter than the outage, yet no journal gap/hybrid crawl was logged")
				}
			}
		})
	}
}

// TestKillDuringReplicationConverges: kill -9 of the daemon during heavy
// replication, remount: the mirror converges, nothing duplicated or lost.
func TestKillDuringReplicationConverges(t *testing.T) {
	f := newFixture(t)
	mir := f.mirrorDir(t, "mirror")
	f.mount(t, "rollover=100ms", "mirror="+mir)
	makeTree(t, f.Mnt, 2000)
	sh(t, f.Mnt, `for i in 1 2 3 4 5 6; do mv l1-$i l1-$i-r; done; head -c 50M /dev/urandom > big`)
	pid := daemonPID(t, f.Brick)
	must(t, syscall.Kill(pid, syscall.SIGKILL))
	waitFor(t, 10*time.Second, "daemon gone", func() bool { return syscall.Kill(pid, 0) != nil || isZombie(pid) })
	syscall.Unmount(f.Mnt, syscall.MNT_DETACH)
	f.mount(t, "rollover=100ms", "mirror="+mir)
	sh(t, f.Mnt, `mv l1-0 l1-0-after && echo after > late`)
	converge(t, f.Brick, mir, 60*time.Second)
	// No stray temporary or limbo files on the mirror.
	for _, d := range []string{".replfs/tmp", ".replfs/limbo"} {
		ents, err := os.ReadDir(filepath.Join(mir, d))
		must(t, err)
		if len(ents) != 0 {
			t.Errorf("mirror %s holds %d leftovers", d, len(ents))
		}
	}
}

// TestCheckpointCompletesOnlyWhenMirrorHasEverything.
func TestCheckpointCompletesOnlyWhenMirrorHasEverything(t *testing.T) {
	f := newFixture(t)
	mir := f.mirrorDir(t, "mirror")
	f.mount(t, "rollover=100ms", "mirror="+mir)
	sh(t, f.Mnt, `echo first > first`)
	converge(t, f.Brick, mir, 20*time.Second)
	if r := run(t, "pause", f.Mnt, mir); r.code != 0 {
		t.Fatalf("pause: %s", r.stderr)
	}
	waitFor(t, 10*time.Second, "Paused", func() bool { return status(t, f.Mnt)[mir].State == "Paused" })
	sh(t, f.Mnt, `mkdir later && head -c 3M /dev/urandom > later/data`)
	if r := run(t, "checkpoint", f.Mnt); r.code != 0 {
		t.Fatalf("checkpoint: %s", r.stderr)
	}
	time.Sleep(500 * time.Millisecond)
	if status(t, f.Mnt)[mir].CheckpointCompleted {
		t.Fatal("checkpoint completed while the target was paused")
	}
	if r := run(t, "status", f.Mnt, "--wait-checkpoint", "--timeout", "300ms"); r.code == 0 {
		t.Fatal("status --wait-checkpoint succeeded while the target was paused")
	}
	if r := run(t, "resume", f.Mnt, mir); r.code != 0 {
		t.Fatalf("resume: %s", r.stderr)
	}
	if r := run(t, "status", f.Mnt, "--wait-checkpoint", "--timeout", "30s"); r.code != 0 {
		t.Fatalf("status --wait-checkpoint: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	// Completed: what was written before the checkpoint is on the mirror.
	a, err := os.ReadFile(f.b("later/data"))
	must(t, err)
	b, err := os.ReadFile(filepath.Join(mir, "later/data"))
	must(t, err)
	if string(a) != string(b) {
		t.Fatal("checkpoint completed but later/data differs on the mirror")
	}
}

// TestBadMirrorOptions: a bad mirror= fails the mount with a clear error
// and changes nothing.
func TestBadMirrorOptions(t *testing.T) {
	requireFUSE(t)
	f := newFixture(t)
	other := newFixture(t)
	othermir := other.mirrorDir(t, "mirror")
	other.mount(t, "mirror="+othermir)
	notdir := filepath.Join(f.Root, "file")
	writeFile(t, notdir, "x")
	must(t, os.Mkdir(f.b("inside"), 0o755))
	for _, tc := range []struct{ mirror, want string }{
		{filepath.Join(f.Root, "missing"), "does not exist"},
		{notdir, "is not a directory"},
		{f.b("inside"), "inside the brick"},
		{f.Mnt, "inside the mountpoint"},
		{othermir, "already a mirror of another brick"},
		{other.Brick, "is a replfs brick"},
	} {
		before := snapshot(t, f.Brick)
		r := run(t, "mount", f.Brick, f.Mnt, "-o", "mirror="+tc.mirror)
		expectOneLineError(t, r, 1, tc.want)
		sameTree(t, before, snapshot(t, f.Brick))
		if isMounted(f.Mnt) {
			t.Fatalf("mounted despite mirror=%s", tc.mirror)
		}
	}
}

// TestCorruptStateRecoveredByHybridCrawl: a corrupt state file is not a
// crash: a hybrid crawl rebuilds the mirror.
func TestCorruptStateRecoveredByHybridCrawl(t *testing.T) {
	f := newFixture(t)
	mir := f.mirrorDir(t, "mirror")
	f.mount(t, "rollover=100ms", "mirror="+mir)
	sh(t, f.Mnt, `echo a > a && mkdir d && echo b > d/b`)
	converge(t, f.Brick, mir, 20*time.Second)
	f.unmount(t)
	states, _ := filepath.Glob(f.b(".replfs/state/*.json"))
	if len(states) != 1 {
		t.Fatalf("state files: %v", states)
	}
	must(t, os.WriteFile(states[0], []byte("{garbage"), 0o600))
	// Changes behind the daemon's back on the mirror are repaired too.
	must(t, os.Remove(filepath.Join(mir, "a")))
	f.mount(t, "rollover=100ms", "mirror="+mir)
	sh(t, f.Mnt, `echo c > c`)
	converge(t, f.Brick, mir, 20*time.Second)
	if v, err := xattr.LGet(mir, "trusted.replfs.stime"); err != nil || len(v) != 12 {
		t.Errorf("mirror root stime xattr: %v %v", v, err)
	}
}

// TestReadOnlyMirrorIsFaultyUntilWritable: a mirror remounted read-only
// is Faulty with the reason; writable again, it is Active and converges.
func TestReadOnlyMirrorIsFaultyUntilWritable(t *testing.T) {
	f := newFixture(t)
	mir := f.mirrorDir(t, "mirror")
	f.mount(t, "rollover=100ms", "mirror="+mir)
	sh(t, f.Mnt, `echo 1 > one`)
	converge(t, f.Brick, mir, 20*time.Second)
	sh(t, "/", "mount --bind "+mir+" "+mir+" && mount -o remount,bind,ro "+mir)
	t.Cleanup(func() {
		if isMounted(mir) {
			syscall.Unmount(mir, syscall.MNT_DETACH)
		}
	})
	sh(t, f.Mnt, `echo 2 > two && mkdir d && echo 3 > d/three`)
	waitFor(t, 20*time.Second, "status Faulty", func() bool { return status(t, f.Mnt)[mir].State == "Faulty" })
	if st := status(t, f.Mnt)[mir]; !strings.Contains(st.LastError, "read-only") {
		t.Errorf("faulty status does not say read-only: %+v", st)
	}
	must(t, syscall.Unmount(mir, 0))
	waitFor(t, 60*time.Second, "status Active", func() bool { return status(t, f.Mnt)[mir].State == "Active" })
	converge(t, f.Brick, mir, 30*time.Second)
}

// TestBacklogIsReplayedAsHistoryCrawl: changes made while a target was
// paused, across a remount, are replayed from the retained journal
// (History crawl), and the mirror converges.
func TestBacklogIsReplayedAsHistoryCrawl(t *testing.T) {
	f := newFixture(t)
	mir := f.mirrorDir(t, "mirror")
	f.mount(t, "rollover=100ms", "mirror="+mir)
	sh(t, f.Mnt, `echo 1 > one`)
	converge(t, f.Brick, mir, 20*time.Second)
	if r := run(t, "pause", f.Mnt, mir); r.code != 0 {
		t.Fatalf("pause: %s", r.stderr)
	}
	sh(t, f.Mnt, `mkdir -p a/b && for i in $(seq 1 50); do echo $i > a/b/f$i; done && mv a c`)
	f.unmount(t)
	f.mount(t, "rollover=100ms", "mirror="+mir)
	if st := status(t, f.Mnt)[mir]; st.State != "Paused" {
		t.Fatalf("pause did not survive the remount: %+v", st)
	}
	if len(diffs(t, f.Brick, mir)) == 0 {
		t.Fatal("mirror changed while paused")
	}
	if r := run(t, "resume", f.Mnt, mir); r.code != 0 {
		t.Fatalf("resume: %s", r.stderr)
	}
	converge(t, f.Brick, mir, 30*time.Second)
	log, _ := os.ReadFile(f.b(".replfs/log/replfs.log"))
	if !strings.Contains(string(log), `"crawl":"History"`) {
		t.Error("no batch was applied as a History crawl")
	}
}

// TestOneFaultyMirrorDoesNotHoldBackTheOther: with two mirrors, one gone
// is Faulty while the other keeps converging.
func TestOneFaultyMirrorDoesNotHoldBackTheOther(t *testing.T) {
	f := newFixture(t)
	a, b := f.mirrorDir(t, "a"), f.mirrorDir(t, "b")
	f.mount(t, "rollover=100ms", "mirror="+a, "mirror="+b, "sync-jobs=2")
	sh(t, f.Mnt, `echo 1 > one`)
	converge(t, f.Brick, a, 20*time.Second)
	converge(t, f.Brick, b, 20*time.Second)
	must(t, os.Rename(a, a+".away"))
	sh(t, f.Mnt, `mkdir d && echo 2 > d/two && mv one uno`)
	converge(t, f.Brick, b, 20*time.Second)
	waitFor(t, 20*time.Second, "a Faulty", func() bool { return status(t, f.Mnt)[a].State == "Faulty" })
	if st := status(t, f.Mnt)[b]; st.State != "Active" {
		t.Errorf("the healthy mirror is %s", st.State)
	}
	must(t, os.Rename(a+".away", a))
	converge(t, f.Brick, a, 60*time.Second)
}

// TestIgnoreDeletesKeepsRemovedFiles: with ignore-deletes, what is removed
// from the brick stays on the mirror; everything else still arrives.
func TestIgnoreDeletesKeepsRemovedFiles(t *testing.T) {
	f := newFixture(t)
	mir := f.mirrorDir(t, "mirror")
	f.mount(t, "rollover=100ms", "mirror="+mir, "ignore-deletes")
	sh(t, f.Mnt, `mkdir d && echo keep > d/old && echo x > gone`)
	converge(t, f.Brick, mir, 20*time.Second)
	sh(t, f.Mnt, `rm gone && rm -r d && echo new > new`)
	if r := run(t, "checkpoint", f.Mnt); r.code != 0 {
		t.Fatalf("checkpoint: %s", r.stderr)
	}
	if r := run(t, "status", f.Mnt, "--wait-checkpoint", "--timeout", "30s"); r.code != 0 {
		t.Fatalf("checkpoint not reached: %s%s", r.stdout, r.stderr)
	}
	for _, p := range []string{"gone", "d/old", "new"} {
		if _, err := os.Lstat(filepath.Join(mir, p)); err != nil {
			t.Errorf("mirror lacks %s: %v", p, err)
		}
	}
	// Apart from the kept entries, the mirror equals the brick.
	for _, d := range diffs(t, f.Brick, mir) {
		if d.Kind == "extra" && (d.Path == "gone" || d.Path == "d") || d.Kind == "mtime" && d.Path == "." {
			continue
		}
		t.Errorf("unexpected difference: %s", d)
	}
}
