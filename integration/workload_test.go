package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/xattr"

	"github.com/replfs/replfs/internal/gfid"
)

// entry is an expected E record: op, gfid, parent gfid/name (and the new
// parent/name for RENAME and the new name for LINK).
type entry struct {
	op, gfid, parent, name, parent2, name2 string
}

func (e entry) String() string {
	s := fmt.Sprintf("%s %s %s/%s", e.op, short(e.gfid), short(e.parent), e.name)
	if e.parent2 != "" {
		s += fmt.Sprintf(" -> %s/%s", short(e.parent2), e.name2)
	}
	return s
}

func short(g string) string {
	if len(g) > 8 {
		return g[:8]
	}
	return g
}

// TestWorkloadJournalHoldsEveryChangeInOrder runs the foundation workload
// through the mount and checks the journal holds exactly the expected entry
// records, in order, with the right gfids, and D/M records for the right
// gfids.
func TestWorkloadJournalHoldsEveryChangeInOrder(t *testing.T) {
	f := newFixture(t)
	f.mount(t, "rollover=100ms")
	root := gfid.Root.String()
	g := func(rel string) string { return gfidAt(t, f.b(rel)).String() }
	var want []entry

	must(t, os.MkdirAll(f.m("d1/d2"), 0o755)) // mkdir -p
	d1, d2 := g("d1"), g("d1/d2")
	want = append(want, entry{"MKDIR", d1, root, "d1", "", ""}, entry{"MKDIR", d2, d1, "d2", "", ""})

	writeFile(t, f.m("d1/d2/f"), "hello") // create + write
	fg := g("d1/d2/f")
	want = append(want, entry{"CREATE", fg, d2, "f", "", ""})

	af, err := os.OpenFile(f.m("d1/d2/f"), os.O_APPEND|os.O_WRONLY, 0) // append
	must(t, err)
	_, err = af.WriteString(" world")
	must(t, err)
	must(t, af.Close())
	must(t, os.Truncate(f.m("d1/d2/f"), 8)) // truncate
	must(t, os.Chmod(f.m("d1/d2/f"), 0o640))
	must(t, os.Chown(f.m("d1/d2/f"), 1234, 5678))
	ts := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must(t, os.Chtimes(f.m("d1/d2/f"), ts, ts)) // utimes
	must(t, xattr.Set(f.m("d1/d2/f"), "user.color", []byte("blue")))

	must(t, os.Symlink("d2/f", f.m("d1/s")))
	sg := g("d1/s")
	want = append(want, entry{"SYMLINK", sg, d1, "s", "", ""})

	must(t, os.Link(f.m("d1/d2/f"), f.m("d1/hl"))) // hard link
	want = append(want, entry{"LINK", fg, d1, "hl", "", ""})

	must(t, os.Rename(f.m("d1/d2/f"), f.m("d1/d2/g"))) // rename file
	want = append(want, entry{"RENAME", fg, d2, "f", d2, "g"})

	must(t, os.Rename(f.m("d1/d2"), f.m("d3"))) // rename directory
	want = append(want, entry{"RENAME", d2, d1, "d2", root, "d3"})

	writeFile(t, f.m("d1/other"), "other")
	og := g("d1/other")
	writeFile(t, f.m("d1/victim"), "victim")
	vg := g("d1/victim")
	must(t, os.Rename(f.m("d1/other"), f.m("d1/victim"))) // rename over an existing file
	want = append(want,
		entry{"CREATE", og, d1, "other", "", ""},
		entry{"CREATE", vg, d1, "victim", "", ""},
		entry{"RENAME", og, d1, "other", d1, "victim"})

	must(t, os.Remove(f.m("d1/s"))) // unlink
	want = append(want, entry{"UNLINK", sg, d1, "s", "", ""})

	must(t, os.Mkdir(f.m("d1/empty"), 0o700))
	eg := g("d1/empty")
	must(t, os.Remove(f.m("d1/empty"))) // rmdir
	want = append(want, entry{"MKDIR", eg, d1, "empty", "", ""}, entry{"RMDIR", eg, d1, "empty", "", ""})

	// The brick holds the result of every operation.
	if got := g("d3/g"); got != fg {
		t.Errorf("gfid changed across rename: %s became %s", fg, got)
	}
	if got := g("d1/hl"); got != fg {
		t.Errorf("hard link has gfid %s, want the file's %s", got, fg)
	}
	if got := g("d1/victim"); got != og {
		t.Errorf("renamed-over name has gfid %s, want the source's %s", got, og)
	}
	f.unmount(t)

	recs := dumpJournal(t, f.Brick)
	var got []entry
	for _, r := range recs {
		if r.Kind == "E" {
			got = append(got, entry{r.Op, r.GFID, r.Parent, r.Name, r.Parent2, r.Name2})
		}
	}
	if len(got) != len(want) {
		t.Errorf("journal holds %d entry records, want %d", len(got), len(want))
	}
	for i := 0; i < len(got) || i < len(want); i++ {
		var gs, ws string
		if i < len(got) {
			gs = got[i].String()
		}
		if i < len(want) {
			ws = want[i].String()
		}
		if gs != ws || (i < len(got) && i < len(want) && got[i] != want[i]) {
			t.Errorf("entry record %d: got %q, want %q", i, gs, ws)
		}
	}

	// D and M records name the file that changed.
	var data, meta []string
	for _, r := range recs {
		switch {
		case r.Kind == "D" && r.GFID == fg:
			data = append(data, r.Op)
		case r.Kind == "M" && r.GFID == fg:
			meta = append(meta, r.Op+":"+maskOrXattr(r))
		case r.Kind != "E" && r.GFID != fg && r.GFID != og && r.GFID != vg:
			t.Errorf("unexpected %s record for gfid %s: %+v", r.Kind, r.GFID, r)
		}
	}
	if len(data) == 0 {
		t.Error("no D record for the written file")
	}
	joined := strings.Join(meta, " ")
	for _, w := range []string{"SETATTR:size", "SETATTR:mode", "SETATTR:owner", "SETATTR:times", "SETXATTR:user.color"} {
		if !strings.Contains(joined, w) {
			t.Errorf("no M record %s for the file; have %s", w, joined)
		}
	}
	// Seqs strictly increase.
	for i := 1; i < len(recs); i++ {
		if recs[i].Seq <= recs[i-1].Seq {
			t.Fatalf("seq %d follows %d", recs[i].Seq, recs[i-1].Seq)
		}
	}
}

func maskOrXattr(r rec) string {
	if r.Xattr != "" {
		return r.Xattr
	}
	var parts []string
	for _, b := range []struct {
		bit  uint32
		name string
	}{{1, "mode"}, {2, "owner"}, {4, "times"}, {8, "size"}} {
		if r.Mask&b.bit != 0 {
			parts = append(parts, b.name)
		}
	}
	return strings.Join(parts, ",")
}

// TestGFIDStableAcrossRenameAndSharedByHardLinks checks identity as a user
// sees it with replfs inspect, and the gfid index entries.
func TestGFIDStableAcrossRenameAndSharedByHardLinks(t *testing.T) {
	f := newFixture(t)
	f.mount(t)
	must(t, os.MkdirAll(f.m("a/b"), 0o755))
	writeFile(t, f.m("a/b/file"), "x")
	before := inspectGFID(t, f.m("a/b/file"))
	dirBefore := inspectGFID(t, f.m("a/b"))
	must(t, os.Link(f.m("a/b/file"), f.m("a/link")))
	must(t, os.Rename(f.m("a"), f.m("z")))
	must(t, os.Rename(f.m("z/b/file"), f.m("z/moved")))
	if got := inspectGFID(t, f.m("z/moved")); got != before {
		t.Errorf("gfid after renames %s, want %s", got, before)
	}
	if got := inspectGFID(t, f.m("z/link")); got != before {
		t.Errorf("hard link gfid %s, want %s", got, before)
	}
	if got := inspectGFID(t, f.m("z/b")); got != dirBefore {
		t.Errorf("directory gfid after parent rename %s, want %s", got, dirBefore)
	}
	// The index reaches the file by gfid (same inode) and the directory at
	// its new place.
	g, _ := gfid.Parse(before)
	var st1, st2 syscall.Stat_t
	must(t, syscall.Lstat(filepath.Join(f.Brick, g.IndexPath()), &st1))
	must(t, syscall.Lstat(f.b("z/moved"), &st2))
	if st1.Ino != st2.Ino {
		t.Error("gfid index entry is not the file")
	}
	dg, _ := gfid.Parse(dirBefore)
	target, err := os.Readlink(filepath.Join(f.Brick, dg.IndexPath()))
	must(t, err)
	zg := gfidAt(t, f.b("z"))
	if want := "../../" + zg.String()[0:2] + "/" + zg.String()[2:4] + "/" + zg.String() + "/b"; target != want {
		t.Errorf("directory pointer %q, want %q", target, want)
	}
	// Link counts through the mount do not show the index's link.
	var st syscall.Stat_t
	must(t, syscall.Stat(f.m("z/moved"), &st))
	if st.Nlink != 2 {
		t.Errorf("nlink through mount = %d, want 2 (two names)", st.Nlink)
	}
	// The last name gone: its index entry goes too.
	must(t, os.Remove(f.m("z/moved")))
	must(t, os.Remove(f.m("z/link")))
	// (retired off the unlink's path, so give it a moment)
	waitFor(t, 5*time.Second, "index entry of the deleted file to go", func() bool {
		_, err := os.Lstat(filepath.Join(f.Brick, g.IndexPath()))
		return os.IsNotExist(err)
	})
}

func inspectGFID(t *testing.T, p string) string {
	t.Helper()
	r := run(t, "inspect", p)
	if r.code != 0 {
		t.Fatalf("inspect %s: %s", p, r.stderr)
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, "gfid:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "gfid:"))
		}
	}
	t.Fatalf("inspect %s printed no gfid: %s", p, r.stdout)
	return ""
}
