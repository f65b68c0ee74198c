package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A mirror whose gfid index no longer leads to a directory (the pointer
// names another directory, or is gone) is damaged even though every name
// matches: the replicator reaches directories by gfid and would write
// into the wrong place. verify must report it as "index", without
// comparing the wrong directory's entries, and repair must point the
// index back, after which replication lands in the right directory.
func TestVerifyFindsStaleDirectoryIndexAndRepairRepointsIt(t *testing.T) {
	f, mir := syncedPair(t, func(b string) {
		for _, d := range []string{"d/sub", "d/gone", "other"} {
			must(t, os.MkdirAll(filepath.Join(b, d), 0o755))
		}
		writeFile(t, filepath.Join(b, "d/sub/in-sub.txt"), "sub\n")
		writeFile(t, filepath.Join(b, "d/gone/in-gone.txt"), "gone\n")
		writeFile(t, filepath.Join(b, "other/in-other.txt"), "other\n")
	}, 30*time.Second)
	brickBefore := treeState(t, f.Brick, brickSkip...)

	ptr := func(rel string) string {
		return filepath.Join(mir, gfidAt(t, filepath.Join(mir, rel)).IndexPath())
	}
	sub, gone, other := ptr("d/sub"), ptr("d/gone"), ptr("other")
	want, err := os.Readlink(sub)
	must(t, err)
	otherTarget, err := os.Readlink(other)
	must(t, err)
	// d/sub's pointer now names other's place; d/gone's is removed.
	must(t, os.Remove(sub))
	must(t, os.Symlink(otherTarget, sub))
	must(t, os.Remove(gone))

	r, rep, ok := verifyJSON(t, "verify", f.Brick, mir, "--checksum")
	expectCode(t, r, 1, "verify of a mirror with stale directory index entries")
	if ok {
		expectDiffs(t, "verify", oneTarget(t, rep, mir, true),
			[]diffKey{{"d/sub", "index"}, {"d/gone", "index"}})
	}

	r = run(t, "repair", f.Brick, mir, "--dry-run")
	expectCode(t, r, 1, "repair --dry-run")
	if !strings.Contains(r.stdout, "repoint") {
		t.Errorf("repair --dry-run does not list a repoint action:\n%s", r.stdout)
	}

	r = run(t, "repair", f.Brick, mir)
	expectCode(t, r, 0, "repair")
	if got, err := os.Readlink(sub); err != nil || got != want {
		t.Errorf("d/sub's index pointer after repair = %q, %v; want %q", got, err, want)
	}
	if _, err := os.Readlink(gone); err != nil {
		t.Errorf("d/gone's index pointer after repair: %v", err)
	}
	r = run(t, "verify", f.Brick, mir, "--checksum")
	expectCode(t, r, 0, "verify after repair")
	noTreeDiffs(t, f.Brick, mir)
	expectUnchanged(t, "brick, by verify and repair", brickBefore, treeState(t, f.Brick, brickSkip...))

	// The replicator finds the repaired directories by gfid again.
	f.mount(t, "rollover=100ms", "mirror="+mir)
	writeFile(t, f.m("d/sub/new.txt"), "new in sub\n")
	writeFile(t, f.m("d/gone/new.txt"), "new in gone\n")
	converge(t, f.Brick, mir, 30*time.Second)
	for _, p := range []string{"other/new.txt"} {
		if _, err := os.Lstat(filepath.Join(mir, p)); err == nil {
			t.Errorf("replication wrote %s on the mirror", p)
		}
	}
}

// A file whose gfid-index entry is gone from the mirror (the replicator
// reaches file content by gfid) is reported as a hardlink difference, and
// repair indexes the name that holds it again, after which replication
// updates it.
func TestRepairReindexesAFileMissingFromTheMirrorIndex(t *testing.T) {
	f, mir := syncedPair(t, func(b string) {
		must(t, os.MkdirAll(filepath.Join(b, "d"), 0o755))
		writeFile(t, filepath.Join(b, "d/f"), "one\n")
		must(t, os.Link(filepath.Join(b, "d/f"), filepath.Join(b, "d/f2")))
	}, 30*time.Second)
	ip := filepath.Join(mir, gfidAt(t, filepath.Join(mir, "d/f")).IndexPath())
	must(t, os.Remove(ip))

	r, rep, ok := verifyJSON(t, "verify", f.Brick, mir)
	expectCode(t, r, 1, "verify of a mirror missing a file's index entry")
	if ok {
		tr := oneTarget(t, rep, mir, false)
		if len(tr.Differences) == 0 {
			t.Fatal("no difference reported")
		}
		for _, d := range tr.Differences {
			if d.Kind != "hardlink" || (d.Path != "d/f" && d.Path != "d/f2") {
				t.Errorf("unexpected difference %s", d)
			}
		}
	}
	r = run(t, "repair", f.Brick, mir)
	expectCode(t, r, 0, "repair")
	r = run(t, "verify", f.Brick, mir)
	expectCode(t, r, 0, "verify after repair")
	var st, sf syscall.Stat_t
	must(t, syscall.Lstat(ip, &st))
	must(t, syscall.Lstat(filepath.Join(mir, "d/f"), &sf))
	if st.Ino != sf.Ino || st.Nlink != 3 {
		t.Errorf("index entry inode %d with %d links; want d/f's inode %d, linked from d/f, d/f2 and the index", st.Ino, st.Nlink, sf.Ino)
	}
	noTreeDiffs(t, f.Brick, mir)

	f.mount(t, "rollover=100ms", "mirror="+mir)
	writeFile(t, f.m("d/f"), "two\n")
	converge(t, f.Brick, mir, 30*time.Second)
	if b, err := os.ReadFile(filepath.Join(mir, "d/f2")); err != nil || string(b) != "two\n" {
		t.Errorf("mirror d/f2 = %q, %v after the update through d/f", b, err)
	}
}
