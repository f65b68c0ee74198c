package integration

// Tests of `replfs verify` and `replfs repair`, written against the
// contract in notes/verify-spec.md (issue 4), not against the code.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/replfs/replfs/integration/treecmp"
)

// TestVerifyFindsExactlyEachInjectedDifferenceAndRepairFixesThem: one
// difference of every kind injected into a synced mirror; verify reports
// exactly those, repair --dry-run lists them and changes nothing, repair
// fixes them, and the brick is never touched.
func TestVerifyFindsExactlyEachInjectedDifferenceAndRepairFixesThem(t *testing.T) {
	f, mir := syncedPair(t, func(b string) { seedBrick(t, b) }, 30*time.Second)
	brickBefore := treeState(t, f.Brick, brickSkip...)

	r := run(t, "verify", f.Brick, mir, "--checksum")
	expectCode(t, r, 0, "verify --checksum of a freshly synced mirror")

	withSum, withoutSum := injectAll(t, mir)
	t.Logf("treecmp's view of the injected mirror:\n%s", treecmp.Report(diffs(t, f.Brick, mir), -1))

	r, rep, ok := verifyJSON(t, "verify", f.Brick, mir, "--checksum")
	expectCode(t, r, 1, "verify --checksum of the injected mirror")
	if ok {
		tr := oneTarget(t, rep, mir, true)
		expectDiffs(t, "verify --checksum", tr, withSum)
		for _, d := range tr.Differences {
			if d.Kind != "extra" && d.GFID == "" {
				t.Errorf("difference without a gfid: %s", d)
			}
		}
	}
	if strings.TrimSpace(r.stdout) == "" {
		t.Error("verify found differences but printed no summary on stdout")
	}

	r, rep, ok = verifyJSON(t, "verify", f.Brick, mir)
	expectCode(t, r, 1, "verify (no --checksum) of the injected mirror")
	if ok {
		expectDiffs(t, "verify without --checksum", oneTarget(t, rep, mir, false), withoutSum)
	}

	mirBefore := treeState(t, mir)
	r = run(t, "repair", f.Brick, mir, "--checksum", "--dry-run")
	expectCode(t, r, 1, "repair --dry-run with differences")
	checkDryRunLines(t, r.stdout, withSum)
	expectUnchanged(t, "mirror, by repair --dry-run", mirBefore, treeState(t, mir))

	r, rep, ok = verifyJSON(t, "repair", f.Brick, mir, "--checksum")
	expectCode(t, r, 0, "repair --checksum")
	t.Logf("repair output:\n%s", r.stdout)
	if ok {
		expectDiffs(t, "repair --json report", oneTarget(t, rep, mir, true), nil)
	}
	r = run(t, "verify", f.Brick, mir, "--checksum")
	expectCode(t, r, 0, "verify --checksum after repair")
	if r.stderr != "" {
		t.Errorf("verify wrote to stderr (not a terminal: no progress expected): %q", r.stderr)
	}
	noTreeDiffs(t, f.Brick, mir)
	if _, err := os.Lstat(filepath.Join(mir, ".replfs/repair/state.json")); err == nil {
		t.Error("repair completed but left .replfs/repair/state.json")
	}
	expectUnchanged(t, "brick, by verify and repair", brickBefore, treeState(t, f.Brick, brickSkip...))
}

// TestRepairKeepExtraLeavesOnlyTheExtras: repair --keep-extra fixes every
// difference but the entries only the mirror has, which it keeps.
func TestRepairKeepExtraLeavesOnlyTheExtras(t *testing.T) {
	f, mir := syncedPair(t, func(b string) { seedBrick(t, b) }, 30*time.Second)
	withSum, _ := injectAll(t, mir)
	var extras []diffKey
	for _, k := range withSum {
		if k.Kind == "extra" {
			extras = append(extras, k)
		}
	}
	r := run(t, "repair", f.Brick, mir, "--checksum", "--keep-extra")
	// The spec leaves open whether kept extras make repair exit 1 ("some
	// remain") or 0; the README settles it: --keep-extra "still exits 0".
	if r.code != 0 {
		t.Errorf("repair --keep-extra: exit %d, want 0 (README: kept extras still exit 0)\nstdout: %s\nstderr: %s",
			r.code, r.stdout, r.stderr)
	}
	if r.code == 2 {
		t.FailNow()
	}
	r, rep, ok := verifyJSON(t, "verify", f.Brick, mir, "--checksum")
	expectCode(t, r, 1, "verify after repair --keep-extra")
	if ok {
		expectDiffs(t, "verify after repair --keep-extra", oneTarget(t, rep, mir, true), extras)
	}
	r = run(t, "repair", f.Brick, mir, "--checksum")
	expectCode(t, r, 0, "repair after repair --keep-extra")
	noTreeDiffs(t, f.Brick, mir)
}

var repairVerbs = []string{"create", "remove", "copy", "chmod", "chown", "touch", "setxattr", "relink", "replace", "symlink"}

// checkDryRunLines checks that every injected path has an action line
// ("VERB PATH") in repair --dry-run's output.
func checkDryRunLines(t *testing.T, out string, want []diffKey) {
	t.Helper()
	acts := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		fs := strings.Fields(l)
		if len(fs) >= 2 && slices.Contains(repairVerbs, fs[0]) {
			for _, p := range fs[1:] {
				acts[p] = append(acts[p], fs[0])
			}
		}
	}
	for _, k := range want {
		if len(acts[k.Path]) == 0 {
			t.Errorf("repair --dry-run lists no action for %s (%s)", k.Path, k.Kind)
		}
	}
	if t.Failed() {
		t.Logf("repair --dry-run output:\n%s", out)
	}
}

// TestBitFlipWithSizeAndMtimeKeptIsFoundOnlyWithChecksum.
func TestBitFlipWithSizeAndMtimeKeptIsFoundOnlyWithChecksum(t *testing.T) {
	const size = 64 << 20
	f, mir := syncedPair(t, func(b string) {
		must(t, os.Mkdir(filepath.Join(b, "big"), 0o755))
		data := make([]byte, size)
		rng := rand.NewChaCha8([32]byte{4})
		rng.Read(data)
		must(t, os.WriteFile(filepath.Join(b, "big/blob"), data, 0o644))
		writeFile(t, filepath.Join(b, "small"), "small")
	}, 60*time.Second)
	p := filepath.Join(mir, "big/blob")
	before := lstatT(t, p)
	flipByte(t, p, size/2+12345)
	after := lstatT(t, p)
	if before.Size != after.Size || before.Mtim != after.Mtim {
		t.Fatalf("injection changed size or mtime: %+v -> %+v", before, after)
	}

	r := run(t, "verify", f.Brick, mir)
	expectCode(t, r, 0, "verify without --checksum (a flipped byte is invisible to metadata)")

	r, rep, ok := verifyJSON(t, "verify", f.Brick, mir, "--checksum")
	expectCode(t, r, 1, "verify --checksum of a flipped byte")
	if ok {
		tr := oneTarget(t, rep, mir, true)
		expectDiffs(t, "verify --checksum", tr, []diffKey{{"big/blob", "content"}})
		if tr.Summary.BytesHashed < 2*size {
			t.Logf("summary.bytes_hashed %d (both copies of %d bytes hashed would be %d)",
				tr.Summary.BytesHashed, size, 2*size)
		}
	}
	// "-" writes the report to stdout.
	r = run(t, "verify", f.Brick, mir, "--checksum", "--json", "-")
	expectCode(t, r, 1, "verify --checksum --json -")
	var rep2 verifyReport
	if err := json.Unmarshal([]byte(r.stdout), &rep2); err != nil {
		t.Errorf("verify --json -: stdout is not the JSON report: %v\n%s", err, r.stdout)
	} else {
		expectDiffs(t, "verify --checksum --json -", oneTarget(t, rep2, mir, true), []diffKey{{"big/blob", "content"}})
	}

	r = run(t, "repair", f.Brick, mir, "--checksum")
	expectCode(t, r, 0, "repair --checksum")
	r = run(t, "verify", f.Brick, mir, "--checksum")
	expectCode(t, r, 0, "verify --checksum after repair")
	noTreeDiffs(t, f.Brick, mir)
}

// repairState is TARGET/.replfs/repair/state.json.
type repairState struct {
	Brick  string `json:"brick"`
	Target string `json:"target"`
	Total  int64  `json:"total"`
	Done   int64  `json:"done"`
}

// TestRepairKilledHalfwayResumesToClean: repair killed with SIGKILL while
// its checkpoint says it is half done; the mirror is not in sync; repair
// --resume completes it and the mirror ends clean.
func TestRepairKilledHalfwayResumesToClean(t *testing.T) {
	const n = 3000
	name := func(i int) string { return fmt.Sprintf("d%02d/f%04d", i%30, i) }
	f, mir := syncedPair(t, func(b string) {
		for i := range n {
			p := filepath.Join(b, name(i))
			if i < 30 {
				must(t, os.MkdirAll(filepath.Dir(p), 0o755))
			}
			must(t, os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, 16<<10+i), 0o644))
		}
	}, 90*time.Second)
	// Every mirror copy differs: missing, another size, or other bytes
	// with a new mtime.
	for i := range n {
		p := filepath.Join(mir, name(i))
		switch i % 3 {
		case 0:
			must(t, os.Remove(p))
		case 1:
			must(t, os.Truncate(p, 100))
		case 2:
			fh, err := os.OpenFile(p, os.O_WRONLY, 0)
			must(t, err)
			_, err = fh.WriteAt([]byte("damaged!"), 0)
			must(t, err)
			must(t, fh.Close())
		}
	}
	brickBefore := treeState(t, f.Brick, brickSkip...)
	statePath := filepath.Join(mir, ".replfs/repair/state.json")
	killed := killRepairHalfway(t, statePath, f.Brick, mir)
	t.Logf("repair killed at done=%d of total=%d", killed.Done, killed.Total)
	if killed.Total < n {
		t.Errorf("checkpoint total %d, want at least %d (one per damaged file)", killed.Total, n)
	}

	r := run(t, "verify", f.Brick, mir)
	expectCode(t, r, 1, "verify after the killed repair")
	if _, err := os.Stat(statePath); err != nil {
		t.Fatalf("killed repair left no checkpoint: %v", err)
	}
	r = run(t, "repair", f.Brick, mir, "--resume")
	expectCode(t, r, 0, "repair --resume")
	r = run(t, "verify", f.Brick, mir)
	expectCode(t, r, 0, "verify after repair --resume")
	r = run(t, "verify", f.Brick, mir, "--checksum")
	expectCode(t, r, 0, "verify --checksum after repair --resume")
	noTreeDiffs(t, f.Brick, mir)
	if _, err := os.Stat(statePath); err == nil {
		t.Error("completed repair left its checkpoint behind")
	}
	expectUnchanged(t, "brick, by repair", brickBefore, treeState(t, f.Brick, brickSkip...))

	// Nothing to resume now.
	r = run(t, "repair", f.Brick, mir, "--resume")
	expectOneLineError(t, r, 2, "")
	if strings.TrimSpace(r.stderr) == "" {
		t.Error("repair --resume without an interrupted repair: no message")
	}
	t.Logf("repair --resume with nothing to resume: %q", strings.TrimSpace(r.stderr))
}

// killRepairHalfway starts repair and steps it (SIGCONT, a millisecond,
// SIGSTOP) until its checkpoint shows 0 < done < total, then kills it
// with SIGKILL and returns that checkpoint.
func killRepairHalfway(t *testing.T, statePath, brick, mir string) repairState {
	t.Helper()
	cmd := exec.Command(replfsBin, "repair", brick, mir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pid := cmd.Process.Pid // signalled only until it is reaped below
	var last repairState
	seen := "never read"
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		syscall.Kill(pid, syscall.SIGSTOP)
		select {
		case err := <-exited:
			t.Fatalf("repair ended (%v) before its checkpoint showed it half done (last checkpoint: %s)\noutput:\n%s",
				err, seen, out.String())
		default:
		}
		time.Sleep(2 * time.Millisecond) // let the stop land
		if data, err := os.ReadFile(statePath); err == nil {
			seen = string(data)
			if json.Unmarshal(data, &last) == nil && last.Done > 0 && last.Done < last.Total {
				syscall.Kill(pid, syscall.SIGKILL)
				<-exited
				return last
			}
		}
		syscall.Kill(pid, syscall.SIGCONT)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	<-exited
	t.Fatalf("repair never showed 0 < done < total in %s within 90s (last: %s)\noutput:\n%s", statePath, seen, out.String())
	return last
}

// makeFlatTree writes n small or empty files, 200 a directory.
func makeFlatTree(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("d%03d/f%05d", i/200, i))
		if i%200 == 0 {
			must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		}
		var data []byte
		if i%4 != 0 {
			data = fmt.Appendf(nil, "%d", i)
		}
		must(t, os.WriteFile(p, data, 0o644))
	}
}

// verifyPeakRSS syncs an n-file tree and returns the peak RSS, in KiB, of
// a verify of it.
func verifyPeakRSS(t *testing.T, n int) int64 {
	t.Helper()
	f, mir := syncedPairIn(t, tmpfsFixture(t), func(b string) { makeFlatTree(t, b, n) }, 3*time.Minute)
	cmd := exec.Command(replfsBin, "verify", f.Brick, mir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	peak, err := runPeakRSS(cmd)
	if err != nil {
		t.Fatalf("verify of the %d-file tree: %v\n%s", n, err, out.String())
	}
	if peak == 0 {
		t.Fatalf("verify of the %d-file tree ended before its RSS could be read once", n)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	t.Logf("verify of %d files: %s, peak RSS %.1f MiB (rusage maxrss %.1f MiB, which counts this test binary's own peak)",
		n, time.Since(t0).Round(time.Millisecond), float64(peak)/1024, float64(ru.Maxrss)/1024)
	return peak
}

// runPeakRSS runs cmd and returns its peak resident set size in KiB, the
// VmHWM of /proc/PID/status read every 2 ms until it exits. Its rusage
// will not do: Go starts a child in the parent's address space
// (CLONE_VM) and the kernel carries that space's high-water mark into
// the child's ru_maxrss at exec, so it is never below this test binary's
// own peak.
func runPeakRSS(cmd *exec.Cmd) (int64, error) {
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	name := "Name:\t" + filepath.Base(cmd.Path)[:min(15, len(filepath.Base(cmd.Path)))] + "\n"
	var peak int64
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return peak, err
		case <-tick.C:
			data, err := os.ReadFile(status)
			if err != nil || !strings.HasPrefix(string(data), name) {
				continue // exiting, or not yet exec'd
			}
			for _, l := range strings.Split(string(data), "\n") {
				var kib int64
				if _, err := fmt.Sscanf(l, "VmHWM: %d kB", &kib); err == nil {
					peak = max(peak, kib)
				}
			}
		}
	}
}

// TestVerifyOfFiftyThousandFilesRunsInBoundedMemory: verify's peak RSS
// stays under a fixed bound and does not grow with the tree.
func TestVerifyOfFiftyThousandFilesRunsInBoundedMemory(t *testing.T) {
	small := verifyPeakRSS(t, 5000)
	big := verifyPeakRSS(t, 50000)
	const bound = 150 << 10 // KiB
	if big >= bound {
		t.Errorf("verify of 50,000 files peaked at %d MiB RSS, bound %d MiB", big>>10, bound>>20)
	}
	if big >= small+32<<10 {
		t.Errorf("verify's RSS grows with the tree: 5,000 files %d MiB, 50,000 files %d MiB (allowed +32 MiB)",
			small>>10, big>>10)
	}
}

// TestVerifyBadInputExitsTwoWithOneLine: every bad argument is exit 2
// and one line on stderr naming it; nothing is written anywhere.
func TestVerifyBadInputExitsTwoWithOneLine(t *testing.T) {
	seed := func(b string) { writeFile(t, filepath.Join(b, "a"), "a") }
	f, mir := syncedPair(t, seed, 20*time.Second)
	g, gmir := syncedPair(t, seed, 20*time.Second)
	plain := filepath.Join(f.Root, "plain")
	must(t, os.Mkdir(plain, 0o755))
	writeFile(t, filepath.Join(plain, "a"), "a")
	plainFile := filepath.Join(f.Root, "plainfile")
	writeFile(t, plainFile, "x")
	reportDir := filepath.Join(f.Root, "reports")
	must(t, os.Mkdir(reportDir, 0o755))
	missing := filepath.Join(f.Root, "missing")
	// Something to find, so that a walk would have a report to write.
	must(t, os.Chmod(filepath.Join(mir, "a"), 0o600))

	watched := []string{f.Brick, mir, g.Brick, gmir, plain, reportDir}
	rootNames := func() []string {
		ents, err := os.ReadDir(f.Root)
		must(t, err)
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	namesBefore := rootNames()
	before := map[string]map[string]string{}
	for _, d := range watched {
		before[d] = treeState(t, d, brickSkip...)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string // in the message
	}{
		{"target is a plain directory", []string{"verify", f.Brick, plain}, plain},
		{"target mirrors another brick", []string{"verify", f.Brick, gmir}, gmir},
		{"target is a brick", []string{"verify", f.Brick, g.Brick}, g.Brick},
		{"brick is a plain directory", []string{"verify", plain, mir}, plain},
		{"brick does not exist", []string{"verify", missing, mir}, missing},
		{"target does not exist", []string{"verify", f.Brick, missing}, missing},
		{"no target", []string{"verify", f.Brick}, ""},
		{"report directory missing", []string{"verify", f.Brick, mir, "--json", "/nonexistent-dir/x.json"}, "/nonexistent-dir/x.json"},
		{"report under a file", []string{"verify", f.Brick, mir, "--json", filepath.Join(plainFile, "x.json")}, filepath.Join(plainFile, "x.json")},
		{"report is a directory", []string{"verify", f.Brick, mir, "--json", reportDir}, reportDir},
		{"repair into a plain directory", []string{"repair", f.Brick, plain}, plain},
		{"repair of another brick's mirror", []string{"repair", f.Brick, gmir}, gmir},
		{"repair from a plain directory", []string{"repair", plain, mir}, plain},
		{"repair of a missing target", []string{"repair", f.Brick, missing}, missing},
		{"repair report path missing", []string{"repair", f.Brick, mir, "--json", "/nonexistent-dir/x.json"}, "/nonexistent-dir/x.json"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			r := run(t, tc.args...)
			expectOneLineError(t, r, 2, tc.want)
			if strings.TrimSpace(r.stderr) == "" {
				t.Error("no message on stderr")
			}
			if strings.Contains(tc.name, "report") && strings.TrimSpace(r.stdout) != "" {
				t.Errorf("an unwritable report path should stop it before the walk; stdout: %q", r.stdout)
			}
			t.Logf("replfs %s -> %q", strings.Join(tc.args, " "), strings.TrimSpace(r.stderr))
		})
	}
	for _, d := range watched {
		expectUnchanged(t, d, before[d], treeState(t, d, brickSkip...))
	}
	if after := rootNames(); !slices.Equal(namesBefore, after) {
		t.Errorf("names beside the report paths changed (a partial report left?): before %v, after %v", namesBefore, after)
	}
}

// TestVerifyOfLiveBrickReportsNoCorruptionForFileBeingWritten: verify
// through the mount path while a file is rewritten through the mount; that
// file is "changed" or nothing, never content or size corruption, and
// nothing else differs.
func TestVerifyOfLiveBrickReportsNoCorruptionForFileBeingWritten(t *testing.T) {
	f := newFixture(t)
	makeTree(t, f.Brick, 2000)
	must(t, os.Mkdir(f.b("live"), 0o755))
	writeFile(t, f.b("live/hot"), "start")
	mir := f.mirrorDir(t, "mirror")
	f.mount(t, "rollover=200ms", "mirror="+mir)
	converge(t, f.Brick, mir, 60*time.Second)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	writes := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			data := bytes.Repeat(fmt.Appendf(nil, "%d,", i), 500+i%3000)
			if err := os.WriteFile(f.m("live/hot"), data, 0o644); err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			writes++
			time.Sleep(time.Millisecond)
		}
	}()
	r, rep, ok := verifyJSON(t, "verify", f.Mnt, mir, "--checksum")
	close(stop)
	wg.Wait()
	t.Logf("%d writes to live/hot; verify exit %d\n%s", writes, r.code, r.stdout)
	if r.code != 0 && r.code != 1 {
		t.Fatalf("verify of a live brick: exit %d\nstderr: %s", r.code, r.stderr)
	}
	if !ok {
		return
	}
	if rep.Brick != f.Brick {
		t.Errorf("report brick %q; the mount path %s should map to its brick %s", rep.Brick, f.Mnt, f.Brick)
	}
	tr := oneTarget(t, rep, mir, true)
	for _, d := range tr.Differences {
		switch {
		case d.Path == "live/hot" && d.Kind == "changed":
			t.Logf("reported, as allowed: %s", d)
		case d.Path == "live/hot":
			t.Errorf("file being written reported as %q, want only \"changed\" or nothing: %s", d.Kind, d)
		default:
			t.Errorf("difference on an entry nobody changed: %s", d)
		}
	}
	if len(tr.Errors) > 0 {
		t.Errorf("errors: %+v", tr.Errors)
	}
}

// lastVerify is a target's "last_verify" in `replfs status --json`.
type lastVerify struct {
	Time        string         `json:"time"`
	Took        string         `json:"took"`
	InSync      bool           `json:"in_sync"`
	Differences int            `json:"differences"`
	ByKind      map[string]int `json:"by_kind"`
	Errors      int            `json:"errors"`
	Error       string         `json:"error"`
}

// lastVerifyOf returns target's last_verify from status (nil when absent)
// and the raw status output.
func lastVerifyOf(t *testing.T, mnt, target string) (*lastVerify, string) {
	t.Helper()
	r := run(t, "status", "--json", mnt)
	if r.code != 0 {
		t.Fatalf("replfs status --json: exit %d: %s", r.code, r.stderr)
	}
	var rows []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("status --json does not parse: %v\n%s", err, r.stdout)
	}
	for _, row := range rows {
		var name string
		json.Unmarshal(row["target"], &name)
		if name != target {
			continue
		}
		raw, ok := row["last_verify"]
		if !ok || string(raw) == "null" {
			return nil, r.stdout
		}
		var lv lastVerify
		if err := json.Unmarshal(raw, &lv); err != nil {
			t.Fatalf("last_verify does not parse: %v\n%s", err, raw)
		}
		return &lv, r.stdout
	}
	t.Fatalf("status has no row for %s:\n%s", target, r.stdout)
	return nil, ""
}

// TestScheduledVerifyShowsMirrorDamageInStatus: with verify-interval=1s,
// the daemon's own verify finds a chmod made on the mirror behind its
// back, and status shows it.
func TestScheduledVerifyShowsMirrorDamageInStatus(t *testing.T) {
	f := newFixture(t)
	mir := f.mirrorDir(t, "mirror")
	requireFUSE(t)
	for _, bad := range []string{"500ms", "0s", "soon"} {
		r := run(t, "mount", f.Brick, f.Mnt, "-o", "mirror="+mir+",verify-interval="+bad)
		expectOneLineError(t, r, 2, "verify-interval")
		if isMounted(f.Mnt) {
			t.Fatalf("mounted with verify-interval=%s", bad)
		}
	}
	f.mount(t, "rollover=100ms", "mirror="+mir, "verify-interval=1s")
	sh(t, f.Mnt, `mkdir d && echo x > d/f && echo y > g`)
	converge(t, f.Brick, mir, 20*time.Second)
	var raw string
	waitForOrDump(t, 15*time.Second, "a scheduled verify in sync", &raw, func() bool {
		lv, out := lastVerifyOf(t, f.Mnt, mir)
		raw = out
		return lv != nil && lv.InSync
	})
	must(t, os.Chmod(filepath.Join(mir, "d/f"), 0o600))
	var lv *lastVerify
	waitForOrDump(t, 15*time.Second, "a scheduled verify finding the chmod", &raw, func() bool {
		lv, raw = lastVerifyOf(t, f.Mnt, mir)
		return lv != nil && !lv.InSync && lv.ByKind["mode"] > 0
	})
	if lv.Differences != 1 || len(lv.ByKind) != 1 || lv.ByKind["mode"] != 1 {
		t.Errorf("last_verify after one chmod: differences %d, by_kind %v; want 1, {mode:1}", lv.Differences, lv.ByKind)
	}
	if _, err := time.Parse(time.RFC3339, lv.Time); err != nil {
		t.Errorf("last_verify.time %q is not RFC3339: %v", lv.Time, err)
	}
	if _, err := time.ParseDuration(lv.Took); err != nil {
		t.Errorf("last_verify.took %q is not a duration: %v", lv.Took, err)
	}
	r := run(t, "status", f.Mnt)
	if !strings.Contains(strings.ToLower(r.stdout), "verified") {
		t.Errorf("status table has no \"verified\" column:\n%s", r.stdout)
	}
}

// TestRepairRefusesWhileTargetReplicatesUnpaused: repair of a target the
// mount's daemon is replicating to is refused (exit 2, "pause") until the
// target is paused.
func TestRepairRefusesWhileTargetReplicatesUnpaused(t *testing.T) {
	f := newFixture(t)
	mir := f.mirrorDir(t, "mirror")
	f.mount(t, "rollover=100ms", "mirror="+mir)
	sh(t, f.Mnt, `mkdir d && echo x > d/f`)
	converge(t, f.Brick, mir, 20*time.Second)
	p := filepath.Join(mir, "d/f")
	must(t, os.Chmod(p, 0o600))
	for _, src := range []string{f.Mnt, f.Brick} {
		r := run(t, "repair", src, mir)
		expectOneLineError(t, r, 2, "pause")
		t.Logf("repair %s %s -> %q", src, mir, strings.TrimSpace(r.stderr))
	}
	if st := lstatT(t, p); st.Mode&0o777 != 0o600 {
		t.Errorf("refused repair changed the mirror: mode %o", st.Mode&0o777)
	}
	if r := run(t, "pause", f.Mnt, mir); r.code != 0 {
		t.Fatalf("pause: %s", r.stderr)
	}
	waitFor(t, 10*time.Second, "Paused", func() bool { return status(t, f.Mnt)[mir].State == "Paused" })
	r := run(t, "repair", f.Mnt, mir)
	expectCode(t, r, 0, "repair of a paused target")
	r = run(t, "verify", f.Mnt, mir)
	expectCode(t, r, 0, "verify after repair")
	if r := run(t, "resume", f.Mnt, mir); r.code != 0 {
		t.Fatalf("resume: %s", r.stderr)
	}
	sh(t, f.Mnt, `echo after > d/after`)
	converge(t, f.Brick, mir, 20*time.Second)
}

// TestVerifyAllTargetsOfMount: --all-targets verifies every mirror the
// mount replicates to, one report each.
func TestVerifyAllTargetsOfMount(t *testing.T) {
	f := newFixture(t)
	a, b := f.mirrorDir(t, "a"), f.mirrorDir(t, "b")
	f.mount(t, "rollover=100ms", "mirror="+a, "mirror="+b, "sync-jobs=2")
	sh(t, f.Mnt, `mkdir d && echo x > d/f && ln -s d/f sl`)
	converge(t, f.Brick, a, 20*time.Second)
	converge(t, f.Brick, b, 20*time.Second)

	r, rep, ok := verifyJSON(t, "verify", f.Mnt, "--all-targets")
	expectCode(t, r, 0, "verify --all-targets, both in sync")
	if !ok {
		return
	}
	var names []string
	for _, tr := range rep.Targets {
		names = append(names, tr.Target)
		if !tr.InSync || len(tr.Differences) > 0 {
			t.Errorf("target %s: in_sync %v, differences %v", tr.Target, tr.InSync, tr.Differences)
		}
	}
	sort.Strings(names)
	if !slices.Equal(names, []string{a, b}) {
		t.Errorf("report targets %v, want %v", names, []string{a, b})
	}

	must(t, os.Chmod(filepath.Join(b, "d/f"), 0o600))
	r, rep, ok = verifyJSON(t, "verify", f.Mnt, "--all-targets")
	expectCode(t, r, 1, "verify --all-targets, one damaged")
	if !ok {
		return
	}
	for _, tr := range rep.Targets {
		switch tr.Target {
		case a:
			expectDiffs(t, "target a", tr, nil)
		case b:
			expectDiffs(t, "target b", tr, []diffKey{{"d/f", "mode"}})
		default:
			t.Errorf("unexpected target report %q", tr.Target)
		}
	}
}
