package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replfs/replfs/internal/exitcode"
	"github.com/replfs/replfs/replicator"
)

// fakeCtl is a replicator.Controller over fixed targets. After a
// checkpoint, each target completes it once Status has been asked
// completeAfter times (never if completeAfter < 0).
type fakeCtl struct {
	mu            sync.Mutex
	targets       []replicator.TargetStatus
	completeAfter int
	polls         int
	ops           []string
}

func (f *fakeCtl) Status() []replicator.TargetStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	for i := range f.targets {
		t := &f.targets[i]
		if !t.Checkpoint.IsZero() && !t.CheckpointCompleted && f.completeAfter >= 0 && f.polls >= f.completeAfter {
			t.CheckpointCompleted, t.CheckpointDone = true, time.Now()
		}
	}
	return append([]replicator.TargetStatus(nil), f.targets...)
}

func (f *fakeCtl) Checkpoint() (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	f.polls = 0
	for i := range f.targets {
		f.targets[i].Checkpoint, f.targets[i].CheckpointCompleted, f.targets[i].CheckpointDone = now, false, time.Time{}
	}
	return now, nil
}

func (f *fakeCtl) Pause(t string) error  { return f.set("pause", t, replicator.StatePaused) }
func (f *fakeCtl) Resume(t string) error { return f.set("resume", t, replicator.StateActive) }

func (f *fakeCtl) set(op, target string, s replicator.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, op+" "+target)
	var names []string
	for i := range f.targets {
		if f.targets[i].Target == target {
			f.targets[i].State = s
			return nil
		}
		names = append(names, f.targets[i].Target)
	}
	return fmt.Errorf("no target %q (targets: %s)", target, strings.Join(names, ", "))
}

// locked runs fn with f locked (the daemon side runs in other goroutines).
func (f *fakeCtl) locked(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// newBrick makes a directory locate() takes for a brick.
func newBrick(t *testing.T) string {
	t.Helper()
	b := t.TempDir()
	if err := os.MkdirAll(filepath.Join(b, ".replfs", "run"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b, ".replfs", "brick.json"), []byte(`{"format":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

// daemon serves f for a new brick and returns the brick.
func daemon(t *testing.T, f *fakeCtl) string {
	t.Helper()
	b := newBrick(t)
	s, err := replicator.ServeControl(replicator.ControlSocket(b), f, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return b
}

// replfs runs the CLI in-process.
func replfs(args ...string) (stdout string, err error) {
	var out, errb bytes.Buffer
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	err = root.Execute()
	return out.String(), err
}

func twoTargets() []replicator.TargetStatus {
	synced := time.Now().Add(-1200 * time.Millisecond)
	return []replicator.TargetStatus{
		{Target: "/mnt/m1", Kind: "mirror", State: replicator.StateActive, Crawl: replicator.CrawlChangelog,
			LastSynced: synced, Lag: 1234 * time.Millisecond, PendingEntry: 1, PendingData: 2, PendingMeta: 3,
			Behind: 17, Failures: 2, LastError: "write /mnt/m1/x: no space left on device", LastErrorTime: synced,
			FilesTransferred: 12, BytesTransferred: 3 << 20,
			LastVerify: &replicator.VerifyStatus{Time: synced, InSync: false, Differences: 3,
				ByKind: map[replicator.DiffKind]int64{replicator.DiffMode: 3}}},
		{Target: "/mnt/m2", Kind: "mirror", State: replicator.StateFaulty, Crawl: replicator.CrawlHybrid,
			Lag: 0, BytesTransferred: 1536},
	}
}

func TestStatusTable(t *testing.T) {
	f := &fakeCtl{targets: twoTargets()}
	b := daemon(t, f)
	out, err := replfs("status", b)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want header, row, error line, row; got:\n%s", out)
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "TARGET KIND STATE CRAWL LAST-SYNCED LAG PENDING(E/D/M) BEHIND FAILURES FILES BYTES CHECKPOINT VERIFIED" {
		t.Errorf("header %q", lines[0])
	}
	want1 := []string{"/mnt/m1", "mirror", "Active", "Changelog", fmtTime(f.targets[0].LastSynced, time.Now()),
		"1.2s", "1/2/3", "17", "2", "12", "3.0MiB", "-", "3", "differences", fmtTime(f.targets[0].LastSynced, time.Now())}
	if got := strings.Fields(lines[1]); fmt.Sprint(got) != fmt.Sprint(want1) {
		t.Errorf("row 1 %q\nwant %q", got, want1)
	}
	if !strings.HasPrefix(lines[2], "  last error (") || !strings.HasSuffix(lines[2], "): write /mnt/m1/x: no space left on device") {
		t.Errorf("error line %q", lines[2])
	}
	want2 := []string{"/mnt/m2", "mirror", "Faulty", "Hybrid", "-", "-", "0/0/0", "0", "0", "0", "1.5KiB", "-", "-"}
	if got := strings.Fields(lines[3]); fmt.Sprint(got) != fmt.Sprint(want2) {
		t.Errorf("row 2 %q\nwant %q", got, want2)
	}
	// Columns line up across the error line.
	if strings.Index(lines[1], "mirror") != strings.Index(lines[3], "mirror") || strings.Index(lines[0], "BYTES") != strings.Index(lines[3], "1.5KiB") {
		t.Errorf("columns not aligned:\n%s", out)
	}

	// A path inside the brick names it too.
	sub := filepath.Join(b, "sub", "dir")
	os.MkdirAll(sub, 0o755)
	if out2, err := replfs("status", sub); err != nil || out2 != out {
		t.Errorf("status of a path inside the brick: %v\n%s", err, out2)
	}

	// Checkpoint column.
	if _, err := replfs("checkpoint", b); err != nil {
		t.Fatal(err)
	}
	f.locked(func() { f.completeAfter = -1 })
	out, err = replfs("status", b)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "pending since "); n != 2 {
		t.Errorf("want 2 pending checkpoints:\n%s", out)
	}
	f.locked(func() { f.completeAfter = 0 })
	out, _ = replfs("status", b)
	if n := strings.Count(out, "completed "); n != 2 {
		t.Errorf("want 2 completed checkpoints:\n%s", out)
	}
}

func TestStatusJSON(t *testing.T) {
	f := &fakeCtl{targets: twoTargets()}
	b := daemon(t, f)
	out, err := replfs("status", "--json", b)
	if err != nil {
		t.Fatal(err)
	}
	var st []replicator.TargetStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(st) != 2 || st[0].Target != "/mnt/m1" || st[0].Behind != 17 || st[0].Lag != 1234*time.Millisecond ||
		st[0].LastError == "" || st[1].State != replicator.StateFaulty || st[1].BytesTransferred != 1536 {
		t.Errorf("decoded %+v", st)
	}
	if !strings.Contains(out, "\n  {") || !strings.Contains(out, `"lag_ns": 1234000000`) {
		t.Errorf("not indented JSON with the documented names:\n%s", out)
	}
}

func TestStatusNoTargets(t *testing.T) {
	b := daemon(t, &fakeCtl{})
	if out, err := replfs("status", b); err != nil || out != "no targets configured\n" {
		t.Errorf("table: %q %v", out, err)
	}
	if out, err := replfs("status", b, "--json"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("json: %q %v", out, err)
	}
}

func TestCheckpointAndWait(t *testing.T) {
	checkpointPoll = 10 * time.Millisecond
	t.Cleanup(func() { checkpointPoll = 200 * time.Millisecond })
	f := &fakeCtl{targets: twoTargets(), completeAfter: 4}
	b := daemon(t, f)

	if _, err := replfs("status", b, "--wait-checkpoint"); err == nil || err.Error() != "no checkpoint set (run replfs checkpoint "+b+")" {
		t.Errorf("wait without a checkpoint: %v", err)
	}

	out, err := replfs("checkpoint", b)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "checkpoint set at ") || !strings.HasSuffix(out, "; see replfs status "+b+" --wait-checkpoint\n") {
		t.Errorf("checkpoint output %q", out)
	}
	at, err := time.Parse(time.RFC3339, strings.TrimSuffix(strings.TrimPrefix(out, "checkpoint set at "), "; see replfs status "+b+" --wait-checkpoint\n"))
	if err != nil || time.Since(at) > time.Minute {
		t.Errorf("checkpoint time in %q: %v", out, err)
	}

	out, err = replfs("status", b, "--wait-checkpoint", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st []replicator.TargetStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.CheckpointCompleted {
			t.Errorf("returned before %s completed the checkpoint", s.Target)
		}
	}
	f.locked(func() {
		if f.polls < 4 {
			t.Errorf("returned after %d polls, the fake completes at 4", f.polls)
		}
	})

	// A target that never completes: the timeout names it.
	if _, err := replfs("checkpoint", b); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.completeAfter = -1
	f.targets[0].CheckpointCompleted, f.targets[0].CheckpointDone = true, time.Now()
	f.mu.Unlock()
	start := time.Now()
	_, err = replfs("status", b, "--wait-checkpoint", "--timeout", "150ms")
	if err == nil || exitcode.Of(err) != exitcode.Failure {
		t.Fatalf("timeout: %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %v", d)
	}
	if msg := err.Error(); !strings.Contains(msg, "not completed within 150ms by /mnt/m2 (Faulty)") || strings.Contains(msg, "/mnt/m1") {
		t.Errorf("timeout message %q", msg)
	}
}

func TestPauseResume(t *testing.T) {
	dir := t.TempDir()
	mirror := filepath.Join(dir, "mirror")
	f := &fakeCtl{targets: []replicator.TargetStatus{{Target: mirror, Kind: "mirror", State: replicator.StateActive}}}
	b := daemon(t, f)

	if out, err := replfs("pause", b, mirror); err != nil || out != "paused "+mirror+"\n" {
		t.Fatalf("pause: %q %v", out, err)
	}
	f.locked(func() {
		if f.targets[0].State != replicator.StatePaused {
			t.Errorf("state %s after pause", f.targets[0].State)
		}
	})
	t.Chdir(dir)
	if out, err := replfs("resume", b, "mirror"); err != nil || out != "resumed "+mirror+"\n" {
		t.Fatalf("resume of a relative path: %q %v", out, err)
	}
	f.locked(func() {
		if f.targets[0].State != replicator.StateActive {
			t.Errorf("state %s after resume", f.targets[0].State)
		}
	})

	_, err := replfs("pause", b, "/no/such/target")
	if want := `no target "/no/such/target" (targets: ` + mirror + ")"; err == nil || err.Error() != want || exitcode.Of(err) != exitcode.Failure {
		t.Errorf("pause of an unknown target: %v, want %q", err, want)
	}
	_, err = replfs("resume", b, "other")
	if want := `no target "` + filepath.Join(dir, "other") + `"`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("resume of an unknown relative target: %v, want %q...", err, want)
	}
	want := []string{"pause " + mirror, "resume " + mirror, "pause /no/such/target", "resume " + filepath.Join(dir, "other")}
	f.locked(func() {
		if fmt.Sprint(f.ops) != fmt.Sprint(want) {
			t.Errorf("daemon saw %q, want %q", f.ops, want)
		}
	})
}

func TestNoDaemon(t *testing.T) {
	b := newBrick(t)
	for _, args := range [][]string{{"status", b}, {"status", "--json", b}, {"status", "--wait-checkpoint", b},
		{"checkpoint", b}, {"pause", b, "/mnt/m1"}, {"resume", b, "/mnt/m1"}} {
		_, err := replfs(args...)
		if want := "no replfs daemon is serving " + b + " (is it mounted?)"; err == nil || err.Error() != want || exitcode.Of(err) != exitcode.Failure {
			t.Errorf("%q: %v, want %q", args, err, want)
		}
	}
	if _, err := replfs("status", t.TempDir()); err == nil || !strings.Contains(err.Error(), "neither in a replfs mount nor in a replfs brick") {
		t.Errorf("status of a plain directory: %v", err)
	}
}

func TestStatusUsage(t *testing.T) {
	b := newBrick(t)
	for _, args := range [][]string{{"status"}, {"status", b, b}, {"checkpoint"}, {"pause", b}, {"resume", b, "x", "y"},
		{"status", b, "--timeout", "1s"}, {"status", b, "--wait-checkpoint", "--timeout", "-1s"}, {"status", b, "--bogus"}} {
		if _, err := replfs(args...); exitcode.Of(err) != exitcode.Usage {
			t.Errorf("%q: %v (exit %d), want a usage error", args, err, exitcode.Of(err))
		}
	}
}

func TestHumanize(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 850 * time.Millisecond: "850ms", 1234 * time.Millisecond: "1.2s", 184 * time.Second: "3m4s",
		2*time.Hour + 5*time.Minute + 10*time.Second: "2h5m", 76 * time.Hour: "3d4h",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
	for n, want := range map[uint64]string{0: "0B", 1023: "1023B", 1536: "1.5KiB", 3 << 20: "3.0MiB", 5 << 30: "5.0GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
