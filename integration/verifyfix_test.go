package integration

// The fixtures of the verify tests: a brick holding one entry for every
// kind of difference `replfs verify` knows (notes/verify-spec.md), and
// injections that damage a synced mirror copy of it in exactly one way
// each, behind replfs's back; snapshots that prove a tree unchanged; and
// the reading of verify's JSON report.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/integration/treecmp"
	"github.com/replfs/replfs/internal/gfid"
)

// diffKey is one difference as verify reports it: a path relative to the
// brick root and a kind.
type diffKey struct{ Path, Kind string }

func (k diffKey) String() string { return k.Kind + " " + k.Path }

// injection damages the mirror copy of one entry.
type injection struct {
	want diffKey
	// checksumOnly: only `verify --checksum` can see it (same size, same
	// mtime).
	checksumOnly bool
	do           func(t *testing.T, mir string)
}

// seedBrick writes, straight into a brick directory not yet mounted, the
// entries the injections damage, and some left alone to catch false
// reports (xattrs, a symlink, a hard-link group, a private directory, a
// file of another owner).
func seedBrick(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{"keep/private", "kinds/gone-dir/sub", "kinds/mode-dir", "kinds/mtime-dir", "hard"} {
		must(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	files := map[string]string{
		"keep/plain":            "unchanged",
		"keep/withx":            "has a user xattr",
		"keep/h1":               "linked, untouched",
		"keep/private/secret":   "in a 0700 directory",
		"keep/owned":            "owned by 1000:1000",
		"kinds/missing-file":    "removed from the mirror",
		"kinds/gone-dir/sub/x":  "x",
		"kinds/gone-dir/sub/y":  "y",
		"kinds/gone-dir/z":      "z",
		"kinds/type-file":       "a file on the brick, a directory on the mirror",
		"kinds/gfid-file":       "another gfid on the mirror",
		"kinds/size-file":       "grows on the mirror",
		"kinds/mode-file":       "chmod on the mirror",
		"kinds/owner-file":      "chown on the mirror",
		"kinds/mtime-file":      "touched on the mirror",
		"kinds/xattr-file":      "an extra xattr on the mirror",
		"kinds/mode-dir/inside": "i",
		"kinds/mtime-dir/in":    "i",
		"hard/hl-a":             "hard-linked on the brick, two copies on the mirror",
	}
	for p, s := range files {
		writeFile(t, filepath.Join(dir, p), s)
	}
	// Big enough that a flipped byte is not in the first block.
	content := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	must(t, os.WriteFile(filepath.Join(dir, "kinds/content-file"), content, 0o644))
	must(t, os.Link(filepath.Join(dir, "keep/h1"), filepath.Join(dir, "keep/h2")))
	must(t, os.Link(filepath.Join(dir, "hard/hl-a"), filepath.Join(dir, "hard/hl-b")))
	must(t, os.Symlink("plain", filepath.Join(dir, "keep/sl")))
	must(t, os.Symlink("target-a", filepath.Join(dir, "kinds/link")))
	must(t, xattr.LSet(filepath.Join(dir, "keep/withx"), "user.color", []byte("blue")))
	must(t, os.Chmod(filepath.Join(dir, "keep/private"), 0o700))
	must(t, os.Chown(filepath.Join(dir, "keep/owned"), 1000, 1000))
	must(t, os.Chmod(filepath.Join(dir, "keep/owned"), 0o640))
}

// injections returns one damage for each kind of difference, on the
// entries seedBrick made. Those adding or removing names put their
// directory's times back, so that each shows as exactly one difference.
func injections() []injection {
	return []injection{
		{want: diffKey{"kinds/missing-file", "missing"}, do: func(t *testing.T, mir string) {
			keepDirTimes(t, filepath.Join(mir, "kinds"), func() {
				must(t, os.Remove(filepath.Join(mir, "kinds/missing-file")))
			})
		}},
		{want: diffKey{"kinds/gone-dir", "missing"}, do: func(t *testing.T, mir string) {
			keepDirTimes(t, filepath.Join(mir, "kinds"), func() {
				must(t, os.RemoveAll(filepath.Join(mir, "kinds/gone-dir")))
			})
		}},
		{want: diffKey{"kinds/extra-file", "extra"}, do: func(t *testing.T, mir string) {
			keepDirTimes(t, filepath.Join(mir, "kinds"), func() {
				writeFile(t, filepath.Join(mir, "kinds/extra-file"), "only on the mirror")
			})
		}},
		{want: diffKey{"kinds/extra-dir", "extra"}, do: func(t *testing.T, mir string) {
			keepDirTimes(t, filepath.Join(mir, "kinds"), func() {
				must(t, os.MkdirAll(filepath.Join(mir, "kinds/extra-dir/inner"), 0o755))
				writeFile(t, filepath.Join(mir, "kinds/extra-dir/inner/f"), "only on the mirror")
			})
		}},
		{want: diffKey{"kinds/type-file", "type"}, do: func(t *testing.T, mir string) {
			keepDirTimes(t, filepath.Join(mir, "kinds"), func() {
				p := filepath.Join(mir, "kinds/type-file")
				must(t, os.Remove(p))
				must(t, os.Mkdir(p, 0o755))
			})
		}},
		{want: diffKey{"kinds/gfid-file", "gfid"}, do: func(t *testing.T, mir string) {
			g := gfid.New()
			must(t, xattr.LSet(filepath.Join(mir, "kinds/gfid-file"), mirrorXattrNS(t, mir)+".replfs.gfid", g[:]))
		}},
		{want: diffKey{"kinds/size-file", "size"}, do: func(t *testing.T, mir string) {
			p := filepath.Join(mir, "kinds/size-file")
			keepTimes(t, p, func() {
				f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
				must(t, err)
				_, err = f.WriteString(", and grew")
				must(t, err)
				must(t, f.Close())
			})
		}},
		{want: diffKey{"kinds/mode-file", "mode"}, do: func(t *testing.T, mir string) {
			must(t, os.Chmod(filepath.Join(mir, "kinds/mode-file"), 0o600))
		}},
		{want: diffKey{"kinds/mode-dir", "mode"}, do: func(t *testing.T, mir string) {
			must(t, os.Chmod(filepath.Join(mir, "kinds/mode-dir"), 0o700))
		}},
		{want: diffKey{"kinds/owner-file", "owner"}, do: func(t *testing.T, mir string) {
			must(t, os.Lchown(filepath.Join(mir, "kinds/owner-file"), 4242, 4343))
		}},
		{want: diffKey{"kinds/mtime-file", "mtime"}, do: func(t *testing.T, mir string) {
			// Seven nanoseconds: mtimes are compared to the nanosecond.
			p := filepath.Join(mir, "kinds/mtime-file")
			st := lstatT(t, p)
			m := st.Mtim
			m.Nsec += 7
			if m.Nsec >= 1e9 {
				m.Sec, m.Nsec = m.Sec+1, m.Nsec-1e9
			}
			setTimes(t, p, st.Atim, m)
		}},
		{want: diffKey{"kinds/mtime-dir", "mtime"}, do: func(t *testing.T, mir string) {
			p := filepath.Join(mir, "kinds/mtime-dir")
			st := lstatT(t, p)
			setTimes(t, p, st.Atim, unix.Timespec{Sec: 978307200})
		}},
		{want: diffKey{"kinds/xattr-file", "xattrs"}, do: func(t *testing.T, mir string) {
			must(t, xattr.LSet(filepath.Join(mir, "kinds/xattr-file"), "user.note", []byte("mirror only")))
		}},
		{want: diffKey{"kinds/link", "symlink"}, do: func(t *testing.T, mir string) {
			replaceSymlink(t, mir, "kinds/link", "target-b")
		}},
		{want: diffKey{"hard/hl-b", "hardlink"}, do: func(t *testing.T, mir string) {
			breakHardLink(t, mir, "hard/hl-b")
		}},
		{want: diffKey{"kinds/content-file", "content"}, checksumOnly: true, do: func(t *testing.T, mir string) {
			flipByte(t, filepath.Join(mir, "kinds/content-file"), -1)
		}},
	}
}

// injectAll applies every injection to the mirror and returns the
// differences expected with and without --checksum.
func injectAll(t *testing.T, mir string) (withSum, withoutSum []diffKey) {
	t.Helper()
	for _, in := range injections() {
		in.do(t, mir)
		withSum = append(withSum, in.want)
		if !in.checksumOnly {
			withoutSum = append(withoutSum, in.want)
		}
	}
	return withSum, withoutSum
}

// mirrorXattrNS is the xattr namespace ("trusted" or "user") of a mirror's
// gfids, from its target.json.
func mirrorXattrNS(t *testing.T, mir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(mir, ".replfs/target.json"))
	must(t, err)
	var ti struct {
		Xattr string `json:"xattr"`
	}
	must(t, json.Unmarshal(data, &ti))
	if ti.Xattr != "trusted" && ti.Xattr != "user" {
		t.Fatalf("%s/.replfs/target.json: xattr %q", mir, ti.Xattr)
	}
	return ti.Xattr
}

func lstatT(t testing.TB, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(p, &st))
	return st
}

func setTimes(t testing.TB, p string, atime, mtime unix.Timespec) {
	t.Helper()
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{atime, mtime}, unix.AT_SYMLINK_NOFOLLOW))
}

// keepTimes runs fn and puts p's atime and mtime back (not following a
// symlink).
func keepTimes(t testing.TB, p string, fn func()) {
	t.Helper()
	st := lstatT(t, p)
	fn()
	setTimes(t, p, st.Atim, st.Mtim)
}

// keepDirTimes is keepTimes for a directory whose names fn changes.
func keepDirTimes(t testing.TB, dir string, fn func()) { t.Helper(); keepTimes(t, dir, fn) }

// copyXattrs copies every xattr of src to dst (neither followed).
func copyXattrs(t testing.TB, src, dst string) {
	t.Helper()
	names, err := xattr.LList(src)
	must(t, err)
	for _, n := range names {
		v, err := xattr.LGet(src, n)
		must(t, err)
		must(t, xattr.LSet(dst, n, v))
	}
}

// replaceSymlink points the mirror's symlink rel elsewhere: a new symlink
// with the old one's xattrs (its gfid), owner and times, also in the
// mirror's gfid index, so that only the target text differs.
func replaceSymlink(t *testing.T, mir, rel, target string) {
	t.Helper()
	p := filepath.Join(mir, rel)
	old := lstatT(t, p)
	g := gfidAt(t, p)
	keepDirTimes(t, filepath.Dir(p), func() {
		tmp := filepath.Join(filepath.Dir(p), ".inject-"+filepath.Base(p))
		must(t, os.Symlink(target, tmp))
		copyXattrs(t, p, tmp)
		must(t, os.Lchown(tmp, int(old.Uid), int(old.Gid)))
		setTimes(t, tmp, old.Atim, old.Mtim)
		must(t, os.Rename(tmp, p))
	})
	ip := filepath.Join(mir, g.IndexPath())
	if _, err := os.Lstat(ip); err == nil {
		must(t, os.Link(p, ip+".inject"))
		must(t, os.Rename(ip+".inject", ip))
	}
}

// breakHardLink makes the mirror's name rel a copy of its inode instead of
// a link to it: same content, xattrs (gfid), owner, mode and times.
func breakHardLink(t *testing.T, mir, rel string) {
	t.Helper()
	p := filepath.Join(mir, rel)
	old := lstatT(t, p)
	if old.Nlink < 2 {
		t.Fatalf("mirror %s has %d links before the injection; want a hard link", rel, old.Nlink)
	}
	data, err := os.ReadFile(p)
	must(t, err)
	keepDirTimes(t, filepath.Dir(p), func() {
		tmp := filepath.Join(filepath.Dir(p), ".inject-"+filepath.Base(p))
		must(t, os.WriteFile(tmp, data, 0o600))
		copyXattrs(t, p, tmp)
		must(t, os.Lchown(tmp, int(old.Uid), int(old.Gid)))
		must(t, os.Chmod(tmp, fs.FileMode(old.Mode&0o777)))
		setTimes(t, tmp, old.Atim, old.Mtim)
		must(t, os.Rename(tmp, p))
	})
}

// flipByte inverts one byte of p in place (the middle one when at < 0)
// and puts p's times back.
func flipByte(t testing.TB, p string, at int64) {
	t.Helper()
	keepTimes(t, p, func() {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		must(t, err)
		defer f.Close()
		if at < 0 {
			fi, err := f.Stat()
			must(t, err)
			at = fi.Size() / 2
		}
		b := make([]byte, 1)
		_, err = f.ReadAt(b, at)
		must(t, err)
		b[0] ^= 0xff
		_, err = f.WriteAt(b, at)
		must(t, err)
		must(t, f.Close())
	})
}

// treeState records, for every entry under root except the relative
// paths in skip (and what is below them), everything a change could
// touch: type and mode, owner, size, mtime and ctime, inode and link
// count, content hash, symlink target and every xattr.
func treeState(t testing.TB, root string, skip ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if slices.Contains(skip, rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "mode=%o uid=%d gid=%d size=%d mtime=%d.%09d ctime=%d.%09d ino=%d nlink=%d",
			st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec, st.Ino, st.Nlink)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			fmt.Fprintf(&b, " sha256=%s", hex.EncodeToString(sum[:8]))
		case unix.S_IFLNK:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " link=%q", l)
		}
		names, _ := xattr.LList(p)
		sort.Strings(names)
		for _, n := range names {
			v, _ := xattr.LGet(p, n)
			fmt.Fprintf(&b, " %s=%x", n, v)
		}
		out[rel] = b.String()
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

// stateChanges lists what differs between two treeStates.
func stateChanges(before, after map[string]string) []string {
	var out []string
	for p, b := range before {
		a, ok := after[p]
		switch {
		case !ok:
			out = append(out, "gone: "+p)
		case a != b:
			out = append(out, fmt.Sprintf("changed: %s\n    before %s\n    after  %s", p, b, a))
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			out = append(out, "new: "+p)
		}
	}
	sort.Strings(out)
	return out
}

// expectUnchanged fails the test when root changed since before.
func expectUnchanged(t testing.TB, what string, before, after map[string]string) {
	t.Helper()
	if ch := stateChanges(before, after); len(ch) > 0 {
		t.Errorf("%s changed (%d entries):\n  %s", what, len(ch), strings.Join(ch, "\n  "))
	}
}

// verifyReport is the JSON report of verify (--json FILE).
type verifyReport struct {
	Format   int            `json:"format"`
	Brick    string         `json:"brick"`
	Checksum bool           `json:"checksum"`
	Targets  []targetReport `json:"targets"`
}

type targetReport struct {
	Target      string       `json:"target"`
	InSync      bool         `json:"in_sync"`
	Started     string       `json:"started"`
	Finished    string       `json:"finished"`
	Differences []reportDiff `json:"differences"`
	Errors      []struct {
		Path  string `json:"path"`
		Error string `json:"error"`
	} `json:"errors"`
	Summary struct {
		Entries     int64          `json:"entries"`
		Files       int64          `json:"files"`
		BytesHashed int64          `json:"bytes_hashed"`
		Differences int            `json:"differences"`
		ByKind      map[string]int `json:"by_kind"`
		Errors      int            `json:"errors"`
	} `json:"summary"`
}

type reportDiff struct {
	Path   string `json:"path"`
	GFID   string `json:"gfid"`
	Kind   string `json:"kind"`
	Brick  string `json:"brick"`
	Target string `json:"target"`
}

func (d reportDiff) String() string {
	return fmt.Sprintf("%s %s (brick %q, target %q)", d.Kind, d.Path, d.Brick, d.Target)
}

// verifyJSON runs replfs with args plus "--json FILE" and reads the
// report; ok is false (and the test marked failed) when there is none.
func verifyJSON(t *testing.T, args ...string) (result, verifyReport, bool) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "report.json")
	r := run(t, append(args, "--json", p)...)
	var rep verifyReport
	data, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("replfs %s: exit %d, no JSON report: %v\nstdout: %s\nstderr: %s",
			strings.Join(args, " "), r.code, err, r.stdout, r.stderr)
		return r, rep, false
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Errorf("replfs %s: JSON report does not parse: %v\n%s", strings.Join(args, " "), err, data)
		return r, rep, false
	}
	return r, rep, true
}

// expectCode fails the test unless r exited with code.
func expectCode(t *testing.T, r result, code int, what string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", what, r.code, code, r.stdout, r.stderr)
	}
}

// oneTarget checks the report's frame and returns its only target.
func oneTarget(t *testing.T, rep verifyReport, target string, checksum bool) targetReport {
	t.Helper()
	if rep.Format != 1 {
		t.Errorf("report format %d, want 1", rep.Format)
	}
	if rep.Checksum != checksum {
		t.Errorf("report checksum %v, want %v", rep.Checksum, checksum)
	}
	if len(rep.Targets) != 1 {
		t.Fatalf("report has %d targets, want 1: %+v", len(rep.Targets), rep.Targets)
	}
	tr := rep.Targets[0]
	if tr.Target != target {
		t.Errorf("report target %q, want %q", tr.Target, target)
	}
	return tr
}

// expectDiffs checks that a target report holds exactly want, as a set of
// (path, kind), one record each, and that its summary agrees.
func expectDiffs(t *testing.T, what string, tr targetReport, want []diffKey) {
	t.Helper()
	wantSet := map[diffKey]bool{}
	for _, k := range want {
		wantSet[k] = true
	}
	gotSet := map[diffKey]bool{}
	var dup, extra, missing []string
	for _, d := range tr.Differences {
		k := diffKey{d.Path, d.Kind}
		if gotSet[k] {
			dup = append(dup, d.String())
		}
		gotSet[k] = true
		if !wantSet[k] {
			extra = append(extra, d.String())
		}
	}
	for _, k := range want {
		if !gotSet[k] {
			missing = append(missing, k.String())
		}
	}
	if len(dup)+len(extra)+len(missing) > 0 {
		var ws, gs []string
		for _, k := range want {
			ws = append(ws, k.String())
		}
		for _, d := range tr.Differences {
			gs = append(gs, d.String())
		}
		sort.Strings(ws)
		sort.Strings(gs)
		t.Errorf("%s: reported differences are not the injected set\n"+
			"injected (%d):\n  %s\nreported (%d):\n  %s\nnot reported: %v\nnot injected: %v\nreported twice: %v",
			what, len(ws), strings.Join(ws, "\n  "), len(gs), strings.Join(gs, "\n  "), missing, extra, dup)
	}
	if tr.InSync != (len(tr.Differences) == 0 && len(tr.Errors) == 0) {
		t.Errorf("%s: in_sync %v with %d differences", what, tr.InSync, len(tr.Differences))
	}
	byKind := map[string]int{}
	for _, d := range tr.Differences {
		byKind[d.Kind]++
	}
	if tr.Summary.Differences != len(tr.Differences) {
		t.Errorf("%s: summary.differences %d, but %d listed", what, tr.Summary.Differences, len(tr.Differences))
	}
	for k, n := range byKind {
		if tr.Summary.ByKind[k] != n {
			t.Errorf("%s: summary.by_kind %v, but the list gives %v", what, tr.Summary.ByKind, byKind)
			break
		}
	}
}

// syncedPair makes a brick from seed (written before the first mount,
// which indexes it), syncs it to a new mirror through a mount, and
// unmounts: verify and repair then run on the two directories.
func syncedPair(t *testing.T, seed func(brick string), timeout time.Duration) (*fixture, string) {
	t.Helper()
	return syncedPairIn(t, newFixture(t), seed, timeout)
}

func syncedPairIn(t *testing.T, f *fixture, seed func(brick string), timeout time.Duration) (*fixture, string) {
	t.Helper()
	t0 := time.Now()
	seed(f.Brick)
	t1 := time.Now()
	mir := f.mirrorDir(t, "mirror")
	f.mount(t, "rollover=100ms", "mirror="+mir)
	t2 := time.Now()
	converge(t, f.Brick, mir, timeout)
	t3 := time.Now()
	f.unmount(t)
	t.Logf("synced pair: seed %s, mount %s, converge %s", t1.Sub(t0).Round(time.Millisecond),
		t2.Sub(t1).Round(time.Millisecond), t3.Sub(t2).Round(time.Millisecond))
	return f, mir
}

// tmpfsFixture is newFixture on a tmpfs of its own when one can be
// mounted: removing trees of tens of thousands of files from a disk takes
// longer than the test, from a tmpfs no time.
func tmpfsFixture(t *testing.T) *fixture {
	t.Helper()
	root := t.TempDir()
	if err := syscall.Mount("tmpfs", root, "tmpfs", 0, "size=4g,mode=0755"); err != nil {
		t.Logf("no tmpfs (%v): the tree goes to disk", err)
		return newFixture(t)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(root, 0); err != nil {
			t.Errorf("unmount tmpfs %s: %v", root, err)
			syscall.Unmount(root, syscall.MNT_DETACH)
		}
	})
	f := &fixture{Root: root, Brick: filepath.Join(root, "brick"), Mnt: filepath.Join(root, "mnt")}
	must(t, os.Mkdir(f.Brick, 0o755))
	must(t, os.Mkdir(f.Mnt, 0o755))
	return f
}

// brickSkip leaves out of a brick's treeState what a run of the daemon,
// not verify or repair, writes.
var brickSkip = []string{".replfs/log", ".replfs/run"}

// noTreeDiffs checks with the independent comparer that mir equals brick.
func noTreeDiffs(t *testing.T, brick, mir string) {
	t.Helper()
	if d := diffs(t, brick, mir); len(d) > 0 {
		t.Errorf("treecmp: mirror differs from the brick:\n%s", treecmp.Report(d, 40))
	}
}

// waitForOrDump is waitFor that shows the last observation on timeout.
func waitForOrDump(t *testing.T, timeout time.Duration, what string, last *string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last status:\n%s", timeout, what, *last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
