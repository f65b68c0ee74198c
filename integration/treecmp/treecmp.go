// Package treecmp compares two directory trees the way a user checking a
// mirror would: names, types, sizes, content, modes, owners, mtimes,
// xattrs, symlink targets, device numbers and hard-link groups. It is
// deliberately independent of replfs's replicator, which it judges.
package treecmp

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"
)

// Options tune a comparison.
type Options struct {
	// SkipRoot names top-level entries not compared (nil: ".replfs").
	SkipRoot []string
	// IgnoreXattr reports xattrs not compared (nil: replfs's own, except
	// the gfid, which must match).
	IgnoreXattr func(name string) bool
	NoMtime     bool // do not compare mtimes
	NoRootMeta  bool // do not compare the roots' own attributes
}

// Diff is one difference; A is the reference side, B the copy.
type Diff struct {
	Path string
	Kind string // missing, extra, type, size, content, mode, owner, mtime, xattr, symlink, rdev, hardlink
	A, B string
}

func (d Diff) String() string {
	if d.A == "" && d.B == "" {
		return fmt.Sprintf("%s: %s", d.Kind, d.Path)
	}
	return fmt.Sprintf("%s: %s (%s vs %s)", d.Kind, d.Path, d.A, d.B)
}

func defaultIgnore(name string) bool {
	if name == "trusted.replfs.gfid" || name == "user.replfs.gfid" {
		return false
	}
	return strings.HasPrefix(name, "trusted.replfs.") || strings.HasPrefix(name, "user.replfs.")
}

type node struct {
	st unix.Stat_t
}

type cmp struct {
	a, b   string
	o      Options
	diffs  []Diff
	inoA   map[[2]uint64][]string
	inoB   map[[2]uint64][]string
	pathsA map[string][2]uint64
}

// Compare walks a (reference) and b (copy) and returns every difference.
// The error is for I/O failures of the walk only.
func Compare(a, b string, o *Options) ([]Diff, error) {
	c := &cmp{a: a, b: b, inoA: map[[2]uint64][]string{}, inoB: map[[2]uint64][]string{}, pathsA: map[string][2]uint64{}}
	if o != nil {
		c.o = *o
	}
	if c.o.SkipRoot == nil {
		c.o.SkipRoot = []string{".replfs"}
	}
	if c.o.IgnoreXattr == nil {
		c.o.IgnoreXattr = defaultIgnore
	}
	if err := c.walk(""); err != nil {
		return nil, err
	}
	c.hardlinks()
	return c.diffs, nil
}

func (c *cmp) add(p, kind, a, b string) { c.diffs = append(c.diffs, Diff{p, kind, a, b}) }

func lstat(p string) (unix.Stat_t, bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if err == unix.ENOENT {
			return st, false, nil
		}
		return st, false, fmt.Errorf("lstat %s: %w", p, err)
	}
	return st, true, nil
}

func typeName(m uint32) string {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFCHR:
		return "chardev"
	case unix.S_IFBLK:
		return "blockdev"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	}
	return "unknown"
}

func (c *cmp) walk(rel string) error {
	pa, pb := filepath.Join(c.a, rel), filepath.Join(c.b, rel)
	sa, okA, err := lstat(pa)
	if err != nil {
		return err
	}
	sb, okB, err := lstat(pb)
	if err != nil {
		return err
	}
	show := rel
	if show == "" {
		show = "."
	}
	switch {
	case !okA && !okB:
		return nil
	case !okB:
		c.add(show, "missing", "", "")
		return nil
	case !okA:
		c.add(show, "extra", "", "")
		return nil
	}
	if sa.Mode&unix.S_IFMT != sb.Mode&unix.S_IFMT {
		c.add(show, "type", typeName(sa.Mode), typeName(sb.Mode))
		return nil
	}
	if rel != "" || !c.o.NoRootMeta {
		if err := c.meta(show, pa, pb, &sa, &sb); err != nil {
			return err
		}
	}
	if sa.Mode&unix.S_IFMT != unix.S_IFDIR {
		ka, kb := [2]uint64{sa.Dev, sa.Ino}, [2]uint64{sb.Dev, sb.Ino}
		c.inoA[ka] = append(c.inoA[ka], show)
		c.inoB[kb] = append(c.inoB[kb], show)
		c.pathsA[show] = ka
		return nil
	}
	names := map[string]bool{}
	for _, d := range []string{pa, pb} {
		ents, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("readdir %s: %w", d, err)
		}
		for _, e := range ents {
			if rel == "" && slices.Contains(c.o.SkipRoot, e.Name()) {
				continue
			}
			names[e.Name()] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		if err := c.walk(filepath.Join(rel, n)); err != nil {
			return err
		}
	}
	return nil
}

func (c *cmp) meta(show, pa, pb string, sa, sb *unix.Stat_t) error {
	t := sa.Mode & unix.S_IFMT
	if t != unix.S_IFLNK && sa.Mode&0o7777 != sb.Mode&0o7777 {
		c.add(show, "mode", fmt.Sprintf("%04o", sa.Mode&0o7777), fmt.Sprintf("%04o", sb.Mode&0o7777))
	}
	if sa.Uid != sb.Uid || sa.Gid != sb.Gid {
		c.add(show, "owner", fmt.Sprintf("%d:%d", sa.Uid, sa.Gid), fmt.Sprintf("%d:%d", sb.Uid, sb.Gid))
	}
	if !c.o.NoMtime && sa.Mtim != sb.Mtim {
		c.add(show, "mtime", fmt.Sprint(sa.Mtim.Nano()), fmt.Sprint(sb.Mtim.Nano()))
	}
	switch t {
	case unix.S_IFREG:
		if sa.Size != sb.Size {
			c.add(show, "size", fmt.Sprint(sa.Size), fmt.Sprint(sb.Size))
		} else {
			ha, err := hashFile(pa)
			if err != nil {
				return err
			}
			hb, err := hashFile(pb)
			if err != nil {
				return err
			}
			if ha != hb {
				c.add(show, "content", ha[:12], hb[:12])
			}
		}
	case unix.S_IFLNK:
		la, err := os.Readlink(pa)
		if err != nil {
			return err
		}
		lb, err := os.Readlink(pb)
		if err != nil {
			return err
		}
		if la != lb {
			c.add(show, "symlink", la, lb)
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		if sa.Rdev != sb.Rdev {
			c.add(show, "rdev", fmt.Sprint(sa.Rdev), fmt.Sprint(sb.Rdev))
		}
	}
	xa, err := c.xattrs(pa)
	if err != nil {
		return err
	}
	xb, err := c.xattrs(pb)
	if err != nil {
		return err
	}
	for n, v := range xa {
		if w, ok := xb[n]; !ok {
			c.add(show, "xattr", n+" set", n+" missing")
		} else if !bytes.Equal(v, w) {
			c.add(show, "xattr", fmt.Sprintf("%s=%q", n, v), fmt.Sprintf("%s=%q", n, w))
		}
	}
	for n := range xb {
		if _, ok := xa[n]; !ok {
			c.add(show, "xattr", n+" missing", n+" set")
		}
	}
	return nil
}

func (c *cmp) xattrs(p string) (map[string][]byte, error) {
	names, err := xattr.LList(p)
	if err != nil {
		return nil, fmt.Errorf("listxattr %s: %w", p, err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		if c.o.IgnoreXattr(n) {
			continue
		}
		v, err := xattr.LGet(p, n)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", p, n, err)
		}
		out[n] = v
	}
	return out, nil
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}

// hardlinks checks that names sharing an inode in a share one in b, and
// the other way round.
func (c *cmp) hardlinks() {
	groupB := map[string][]string{}
	for _, names := range c.inoB {
		for _, n := range names {
			groupB[n] = names
		}
	}
	inA := c.pathsAAsGroup()
	reported := map[string]bool{}
	for _, names := range c.inoA {
		for _, n := range names {
			gb, ok := groupB[n]
			if !ok {
				continue // missing in b: reported already
			}
			ga := present(names, groupB)
			gbA := present(gb, inA)
			if !sameSet(ga, gbA) && !reported[n] {
				for _, x := range append(slices.Clone(ga), gbA...) {
					reported[x] = true
				}
				c.add(n, "hardlink", strings.Join(ga, ","), strings.Join(gbA, ","))
			}
		}
	}
}

func (c *cmp) pathsAAsGroup() map[string][]string {
	m := make(map[string][]string, len(c.pathsA))
	for p := range c.pathsA {
		m[p] = nil
	}
	return m
}

// present keeps the names that exist on the other side (names missing
// there are reported as missing, not as a link difference).
func present(names []string, other map[string][]string) []string {
	var out []string
	for _, n := range names {
		if _, ok := other[n]; ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func sameSet(a, b []string) bool { return slices.Equal(a, b) }

// Report renders up to max differences and the total.
func Report(diffs []Diff, max int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d differences", len(diffs))
	for i, d := range diffs {
		if i == max {
			fmt.Fprintf(&b, "\n... and %d more", len(diffs)-max)
			break
		}
		b.WriteString("\n  " + d.String())
	}
	return b.String()
}
