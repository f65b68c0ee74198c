package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"
)

// entrySnap is what a snapshot records of one entry: everything a
// replicator writing outside its mirror could change, except atime (reads
// change it) and ctime (any of the others does).
type entrySnap struct {
	Type   string // "dir", "file", "symlink", "fifo", "socket", "char", "block"
	Mode   uint32 // permission bits, set-id and sticky (mode & 07777)
	UID    uint32
	GID    uint32
	Size   int64
	Mtime  int64 // unix ns
	Link   string
	Xattrs map[string]string // name -> hex value
	SHA256 string            // regular files only
}

// treeSnap maps a slash-separated path relative to the snapshot's root
// ("." for the root itself) to its entry.
type treeSnap struct {
	root    string
	entries map[string]entrySnap
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFREG:
		return "file"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "char"
	case unix.S_IFBLK:
		return "block"
	}
	return fmt.Sprintf("type%o", mode&unix.S_IFMT)
}

// snapshotTree records dir and everything below it, not following
// symlinks. skip names relative paths whose whole subtree (the entry
// itself included) is left out, such as a mirror kept inside dir.
func snapshotTree(t testing.TB, dir string, skip ...string) treeSnap {
	t.Helper()
	s := treeSnap{root: dir, entries: map[string]entrySnap{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if slices.Contains(skip, rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		e, err := snapEntry(p)
		if err != nil {
			return err
		}
		s.entries[rel] = e
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", dir, err)
	}
	return s
}

func snapEntry(p string) (entrySnap, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return entrySnap{}, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	e := entrySnap{Type: fileType(st.Mode), Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid,
		Size: st.Size, Mtime: st.Mtim.Nano(), Xattrs: map[string]string{}}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		f, err := os.Open(p)
		if err != nil {
			return e, err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return e, fmt.Errorf("read %s: %w", p, err)
		}
		e.SHA256 = hex.EncodeToString(h.Sum(nil))
	case unix.S_IFLNK:
		l, err := os.Readlink(p)
		if err != nil {
			return e, err
		}
		e.Link = l
	}
	names, err := xattr.LList(p)
	if err != nil {
		return e, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	for _, n := range names {
		v, err := xattr.LGet(p, n)
		if err != nil {
			return e, fmt.Errorf("xattr %s of %s: %w", n, p, err)
		}
		e.Xattrs[n] = hex.EncodeToString(v)
	}
	return e, nil
}

// diffEntry lists the fields in which a and b differ.
func diffEntry(a, b entrySnap) []string {
	var out []string
	add := func(field string, x, y any) { out = append(out, fmt.Sprintf("%s %v -> %v", field, x, y)) }
	if a.Type != b.Type {
		add("type", a.Type, b.Type)
	}
	if a.Mode != b.Mode {
		add("mode", fmt.Sprintf("%04o", a.Mode), fmt.Sprintf("%04o", b.Mode))
	}
	if a.UID != b.UID || a.GID != b.GID {
		add("owner", fmt.Sprintf("%d:%d", a.UID, a.GID), fmt.Sprintf("%d:%d", b.UID, b.GID))
	}
	if a.Size != b.Size {
		add("size", a.Size, b.Size)
	}
	if a.Mtime != b.Mtime {
		add("mtime", a.Mtime, b.Mtime)
	}
	if a.Link != b.Link {
		add("symlink", fmt.Sprintf("%q", a.Link), fmt.Sprintf("%q", b.Link))
	}
	if a.SHA256 != b.SHA256 {
		add("sha256", short16(a.SHA256), short16(b.SHA256))
	}
	var names []string
	for n := range a.Xattrs {
		names = append(names, n)
	}
	for n := range b.Xattrs {
		if _, ok := a.Xattrs[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		x, okx := a.Xattrs[n]
		y, oky := b.Xattrs[n]
		switch {
		case !oky:
			add("xattr "+n, x, "(removed)")
		case !okx:
			add("xattr "+n, "(absent)", y)
		case x != y:
			add("xattr "+n, x, y)
		}
	}
	return out
}

func short16(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

// snapshotChanges lists every difference between two snapshots, one line
// each, sorted by path.
func snapshotChanges(before, after treeSnap) []string {
	var out []string
	for p, b := range before.entries {
		a, ok := after.entries[p]
		if !ok {
			out = append(out, fmt.Sprintf("%s: gone (was %s)", p, b.Type))
			continue
		}
		for _, d := range diffEntry(b, a) {
			out = append(out, p+": "+d)
		}
	}
	for p, a := range after.entries {
		if _, ok := before.entries[p]; !ok {
			what := a.Type
			if a.Link != "" {
				what += " -> " + a.Link
			}
			out = append(out, fmt.Sprintf("%s: new %s", p, what))
		}
	}
	sort.Strings(out)
	return out
}

// assertSameSnapshot fails the test, listing every difference, when after
// differs from before.
func assertSameSnapshot(t testing.TB, before, after treeSnap) {
	t.Helper()
	if ch := snapshotChanges(before, after); len(ch) > 0 {
		t.Errorf("%s changed (%d differences):\n  %s", before.root, len(ch), strings.Join(ch, "\n  "))
	}
}
