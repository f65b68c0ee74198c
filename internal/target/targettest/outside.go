package targettest

import (
	"bytes"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/contenthash"
	"github.com/replfs/replfs/internal/gfid"
)

// Bait planted in Outside: entries whose names and gfid xattrs match
// what the escape cases remove, move and change, so that a target that
// followed a symlink out of its tree would find them and act.
var (
	victimFile = gfid.GFID{0xba, 0x17, 15: 1} // Outside/victim
	victimDir  = gfid.GFID{0xba, 0x17, 15: 2} // Outside/victimdir, empty
	victimTree = gfid.GFID{0xba, 0x17, 15: 3} // Outside/victimtree/inner
)

// watchOutside plants the bait in h.Outside and checks, when the test
// ends (after the suite closed the target), that nothing there changed.
func watchOutside(t *testing.T, h Harness) {
	t.Helper()
	plantBait(t, h.Outside)
	before := snapshotOutside(t, h.Outside, h.TargetDir)
	t.Cleanup(func() { checkOutside(t, h, before) })
}

func checkOutside(t *testing.T, h Harness, before map[string]string) {
	t.Helper()
	after := snapshotOutside(t, h.Outside, h.TargetDir)
	for _, p := range slices.Sorted(maps.Keys(before)) {
		if a, ok := after[p]; !ok {
			t.Errorf("outside the target, %s was removed (it was %s)", filepath.Join(h.Outside, p), before[p])
		} else if a != before[p] {
			t.Errorf("outside the target, %s changed:\n was %s\n now %s", filepath.Join(h.Outside, p), before[p], a)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(after)) {
		if _, ok := before[p]; !ok {
			t.Errorf("outside the target, %s was made: %s", filepath.Join(h.Outside, p), after[p])
		}
	}
}

// plantBait makes what is missing of the bait (Outside may be shared).
func plantBait(t *testing.T, dir string) {
	t.Helper()
	mk := func(p string, g gfid.GFID, isDir bool, content string) {
		p = filepath.Join(dir, p)
		if _, err := os.Lstat(p); err == nil {
			return
		}
		var err error
		if isDir {
			err = os.Mkdir(p, 0o755)
		} else {
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatalf("outside bait: %v", err)
		}
		if !g.IsZero() {
			// Either xattr a kind may read gfids from; trusted.* only
			// when run as root, user.* where the filesystem has them.
			unix.Lsetxattr(p, gfid.XattrUser, g[:], 0)
			unix.Lsetxattr(p, gfid.XattrTrusted, g[:], 0)
		}
	}
	mk("victim", victimFile, false, "bait: a target must never change this file\n")
	mk("victimdir", victimDir, true, "")
	mk("victimtree", victimTree, true, "")
	mk("victimtree/inner", gfid.Zero, false, "inner bait\n")
}

// snapshotOutside describes every entry below dir but skip, never
// following a symlink: type, mode, owner, mtime, size, xattrs, and the
// content hash or link target.
func snapshotOutside(t *testing.T, dir, skip string) map[string]string {
	t.Helper()
	skip = filepath.Clean(skip)
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dir, p)
		if err != nil {
			out[rel] = "error: " + err.Error()
			return nil
		}
		if skip != "." && filepath.Clean(p) == skip {
			return filepath.SkipDir
		}
		// The directory holding the target's changes its mtime when the
		// target's own directory goes (MakeUnavailable): its entries
		// still say whether anything else came or went.
		out[rel] = describePath(p, skip == "." || filepath.Clean(p) != filepath.Dir(skip))
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot of %s: %v", dir, err)
	}
	return out
}

func describePath(p string, mtime bool) string {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return "lstat: " + err.Error()
	}
	s := fmt.Sprintf("mode=%o owner=%d:%d xattrs=%s", st.Mode, st.Uid, st.Gid, pathXattrs(p))
	if mtime {
		s += fmt.Sprintf(" mtime=%d", st.Mtim.Nano())
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		s += fmt.Sprintf(" size=%d", st.Size)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return s + " open: " + err.Error()
		}
		defer unix.Close(fd)
		sum, n, err := contenthash.FD(fd, st.Size)
		s += fmt.Sprintf(" sum=%s n=%d err=%v", sum, n, err)
	case unix.S_IFLNK:
		l, err := os.Readlink(p)
		s += fmt.Sprintf(" link=%q err=%v", l, err)
	}
	return s
}

// pathXattrs lists p's xattrs and their values, sorted.
func pathXattrs(p string) string {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	var names []string
	for _, name := range bytes.Split(buf[:n], []byte{0}) {
		if len(name) > 0 {
			names = append(names, string(name))
		}
	}
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		v := make([]byte, 64<<10)
		k, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			fmt.Fprintf(&b, "%s:(%v);", name, err)
			continue
		}
		fmt.Fprintf(&b, "%s=%q;", name, v[:k])
	}
	return b.String()
}
