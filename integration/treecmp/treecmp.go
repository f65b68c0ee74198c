// Package treecmp compares two directory trees the way a user checking a
// mirror would: names, file types, sizes, content, permission bits,
// owners, mtimes, extended attributes, symlink targets, device numbers and
// hard-link groups.
//
// It is deliberately independent of replfs's replicator, which it judges:
// it imports nothing from replfs and knows about replfs only through the
// defaults of Options (the hidden ".replfs" state directory at the root and
// the replicator's private xattrs).
package treecmp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"
)

// Kinds of Diff.
const (
	KindMissing  = "missing"  // in A, not in B
	KindExtra    = "extra"    // in B, not in A
	KindType     = "type"     // different file types
	KindSize     = "size"     // regular files of different sizes
	KindContent  = "content"  // regular files of the same size, different bytes
	KindMode     = "mode"     // permission bits, setuid, setgid, sticky (mode & 07777)
	KindOwner    = "owner"    // uid or gid
	KindMtime    = "mtime"    // modification time, nanosecond exact
	KindXattr    = "xattr"    // one extended attribute absent on a side or with another value
	KindSymlink  = "symlink"  // symlink targets
	KindRdev     = "rdev"     // device numbers of character and block devices
	KindHardlink = "hardlink" // names sharing an inode in A do not share one in B, or the other way round
)

// Options tune a comparison. The zero value (or a nil *Options) compares
// everything except the replicator's own state.
type Options struct {
	// SkipRoot names top-level entries left out on both sides and not
	// descended into. Nil means []string{".replfs"}; an empty non-nil slice
	// skips nothing.
	SkipRoot []string
	// IgnoreXattr reports the extended attributes not compared. Nil means
	// DefaultIgnoreXattr.
	IgnoreXattr func(name string) bool
	// NoMtime turns off mtime comparison (of files, symlinks and
	// directories alike).
	NoMtime bool
	// NoRootMeta turns off comparison of the two roots' own mode, owner,
	// mtime and xattrs; their contents are still compared.
	NoRootMeta bool
}

// DefaultIgnoreXattr ignores the replicator's private xattrs, those named
// "trusted.replfs.*" or "user.replfs.*", except the gfids
// "trusted.replfs.gfid" and "user.replfs.gfid", which a mirror must carry
// unchanged and which are therefore compared.
func DefaultIgnoreXattr(name string) bool {
	switch name {
	case "trusted.replfs.gfid", "user.replfs.gfid":
		return false
	}
	return strings.HasPrefix(name, "trusted.replfs.") || strings.HasPrefix(name, "user.replfs.")
}

// Diff is one difference between the reference tree A and the copy B.
type Diff struct {
	// Path is slash-separated and relative to the roots; "." is the roots.
	Path string
	// Kind is one of the Kind constants.
	Kind string
	// A and B describe the two sides (either may be empty).
	A, B string
}

// String renders d on one line, as "kind path: A | B", an empty side as "-".
func (d Diff) String() string {
	if d.A == "" && d.B == "" {
		return d.Kind + " " + d.Path
	}
	side := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	return fmt.Sprintf("%s %s: %s | %s", d.Kind, d.Path, side(d.A), side(d.B))
}

// Report renders the first max differences, one a line, after a line with
// their total. A negative max renders them all.
func Report(diffs []Diff, max int) string {
	var b strings.Builder
	switch len(diffs) {
	case 0:
		return "no differences"
	case 1:
		b.WriteString("1 difference")
	default:
		fmt.Fprintf(&b, "%d differences", len(diffs))
	}
	for i, d := range diffs {
		if max >= 0 && i == max {
			fmt.Fprintf(&b, "\n  ... and %d more", len(diffs)-max)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(d.String())
	}
	return b.String()
}

// Compare walks a, the reference (a brick), and b, the copy (a mirror),
// together and returns every difference, in walk order (names sorted,
// depth first) followed by the hard-link differences. Symlinks are never
// followed. The error is for I/O failures of the walk only, and for roots
// that do not exist; an entry vanishing from a live tree during the walk
// is reported as a difference, not as an error.
func Compare(a, b string, o *Options) ([]Diff, error) {
	c := &comparer{a: a, b: b}
	if o != nil {
		c.opt = *o
	}
	if c.opt.SkipRoot == nil {
		c.opt.SkipRoot = []string{".replfs"}
	}
	if c.opt.IgnoreXattr == nil {
		c.opt.IgnoreXattr = DefaultIgnoreXattr
	}
	for _, root := range []string{a, b} {
		var st unix.Stat_t
		if err := unix.Lstat(root, &st); err != nil {
			return nil, fmt.Errorf("treecmp: root %s: %w", root, err)
		}
	}
	if err := c.entry(""); err != nil {
		return nil, err
	}
	c.hardlinks()
	return c.diffs, nil
}

// fileID identifies an inode within one tree.
type fileID struct{ dev, ino uint64 }

// linked is a non-directory present on both sides with the same type.
type linked struct {
	path   string
	ia, ib fileID
}

type comparer struct {
	a, b  string
	opt   Options
	diffs []Diff
	links []linked // in walk order
}

// vanished tells an entry removed during the walk, on a live tree.
type vanished struct{ inA bool }

func (v *vanished) Error() string { return "vanished" }

func (c *comparer) add(p, kind, a, b string) {
	c.diffs = append(c.diffs, Diff{Path: p, Kind: kind, A: a, B: b})
}

func show(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

// entry compares rel on both sides and, for directories, what is below.
func (c *comparer) entry(rel string) error {
	pa, pb := filepath.Join(c.a, rel), filepath.Join(c.b, rel)
	sa, okA, err := lstat(pa)
	if err != nil {
		return err
	}
	sb, okB, err := lstat(pb)
	if err != nil {
		return err
	}
	p := show(rel)
	switch {
	case !okA && !okB: // listed, then removed from both: nothing to compare
		return nil
	case !okB:
		c.add(p, KindMissing, typeName(sa.Mode), "")
		return nil
	case !okA:
		c.add(p, KindExtra, "", typeName(sb.Mode))
		return nil
	}
	ta, tb := sa.Mode&unix.S_IFMT, sb.Mode&unix.S_IFMT
	if ta != tb {
		c.add(p, KindType, typeName(sa.Mode), typeName(sb.Mode))
		return nil
	}
	err = nil
	if rel != "" || !c.opt.NoRootMeta {
		err = c.meta(p, pa, pb, &sa, &sb)
	}
	if err == nil && ta == unix.S_IFDIR {
		err = c.dir(rel, pa, pb)
	}
	var v *vanished
	if errors.As(err, &v) {
		if v.inA {
			c.add(p, KindExtra, "vanished during the walk", typeName(sb.Mode))
		} else {
			c.add(p, KindMissing, typeName(sa.Mode), "vanished during the walk")
		}
		return nil
	}
	if err != nil {
		return err
	}
	if ta != unix.S_IFDIR {
		c.links = append(c.links, linked{rel, fileID{sa.Dev, sa.Ino}, fileID{sb.Dev, sb.Ino}})
	}
	return nil
}

// dir compares the union of the entries of directories pa and pb.
func (c *comparer) dir(rel, pa, pb string) error {
	na, err := readDirNames(pa, true)
	if err != nil {
		return err
	}
	nb, err := readDirNames(pb, false)
	if err != nil {
		return err
	}
	names := slices.Concat(na, nb)
	slices.Sort(names)
	names = slices.Compact(names)
	for _, n := range names {
		if rel == "" && slices.Contains(c.opt.SkipRoot, n) {
			continue
		}
		if err := c.entry(path.Join(rel, n)); err != nil {
			return err
		}
	}
	return nil
}

// meta compares the attributes of an entry of the same type on both sides.
func (c *comparer) meta(p, pa, pb string, sa, sb *unix.Stat_t) error {
	t := sa.Mode & unix.S_IFMT
	// Symlink permission bits cannot be set on Linux (always 0777): not compared.
	if ma, mb := sa.Mode&0o7777, sb.Mode&0o7777; t != unix.S_IFLNK && ma != mb {
		c.add(p, KindMode, fmt.Sprintf("%04o", ma), fmt.Sprintf("%04o", mb))
	}
	if sa.Uid != sb.Uid || sa.Gid != sb.Gid {
		c.add(p, KindOwner, fmt.Sprintf("%d:%d", sa.Uid, sa.Gid), fmt.Sprintf("%d:%d", sb.Uid, sb.Gid))
	}
	if !c.opt.NoMtime && sa.Mtim != sb.Mtim {
		c.add(p, KindMtime, fmtTime(sa.Mtim), fmtTime(sb.Mtim))
	}
	switch t {
	case unix.S_IFREG:
		if sa.Size != sb.Size {
			c.add(p, KindSize, fmt.Sprint(sa.Size), fmt.Sprint(sb.Size))
			break
		}
		ha, err := hashFile(pa, true)
		if err != nil {
			return err
		}
		hb, err := hashFile(pb, false)
		if err != nil {
			return err
		}
		if ha != hb {
			c.add(p, KindContent, "sha256 "+ha[:16], "sha256 "+hb[:16])
		}
	case unix.S_IFLNK:
		la, err := readlink(pa, true)
		if err != nil {
			return err
		}
		lb, err := readlink(pb, false)
		if err != nil {
			return err
		}
		if la != lb {
			c.add(p, KindSymlink, la, lb)
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		if sa.Rdev != sb.Rdev {
			c.add(p, KindRdev, fmtDev(sa.Rdev), fmtDev(sb.Rdev))
		}
	}
	xa, err := c.xattrs(pa, true)
	if err != nil {
		return err
	}
	xb, err := c.xattrs(pb, false)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(xa)+len(xb))
	for n := range xa {
		names = append(names, n)
	}
	for n := range xb {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range slices.Compact(names) {
		va, okA := xa[n]
		vb, okB := xb[n]
		switch {
		case !okB:
			c.add(p, KindXattr, n+"="+fmtValue(va), n+" absent")
		case !okA:
			c.add(p, KindXattr, n+" absent", n+"="+fmtValue(vb))
		case !bytes.Equal(va, vb):
			c.add(p, KindXattr, n+"="+fmtValue(va), n+"="+fmtValue(vb))
		}
	}
	return nil
}

// hardlinks compares, for every non-directory present on both sides, the
// names sharing its inode in A with those sharing its inode in B. Only
// names compared by the walk count: links from skipped or one-sided parts
// (a ".replfs" gfid index) do not, and link counts are never compared.
func (c *comparer) hardlinks() {
	groupA := make(map[fileID][]string)
	groupB := make(map[fileID][]string)
	for _, l := range c.links {
		groupA[l.ia] = append(groupA[l.ia], l.path)
		groupB[l.ib] = append(groupB[l.ib], l.path)
	}
	reported := make(map[string]bool)
	for _, l := range c.links {
		// Both groups are in walk order, so equal sets are equal slices.
		ga, gb := groupA[l.ia], groupB[l.ib]
		if reported[l.path] || slices.Equal(ga, gb) {
			continue
		}
		for _, n := range ga {
			reported[n] = true
		}
		for _, n := range gb {
			reported[n] = true
		}
		c.add(l.path, KindHardlink, strings.Join(ga, ", "), strings.Join(gb, ", "))
	}
}

// gone tells errors meaning that the entry was removed or replaced.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
}

func lstat(p string) (unix.Stat_t, bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if gone(err) {
			return st, false, nil
		}
		return st, false, fmt.Errorf("treecmp: lstat %s: %w", p, err)
	}
	return st, true, nil
}

func readDirNames(p string, inA bool) ([]string, error) {
	ents, err := os.ReadDir(p)
	if err != nil {
		if gone(err) {
			return nil, &vanished{inA}
		}
		return nil, fmt.Errorf("treecmp: %w", err) // *PathError: has the path
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

func readlink(p string, inA bool) (string, error) {
	s, err := os.Readlink(p)
	if err != nil {
		if gone(err) || errors.Is(err, unix.EINVAL) { // EINVAL: no longer a symlink
			return "", &vanished{inA}
		}
		return "", fmt.Errorf("treecmp: %w", err)
	}
	return s, nil
}

// hashFile returns the hex SHA-256 of a regular file's content, streamed.
func hashFile(p string, inA bool) (string, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		if gone(err) {
			return "", &vanished{inA}
		}
		return "", fmt.Errorf("treecmp: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return "", fmt.Errorf("treecmp: %w", err)
	} else if !fi.Mode().IsRegular() { // replaced since the lstat
		return "", &vanished{inA}
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("treecmp: read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// xattrs returns the compared extended attributes of p, not following a
// symlink.
func (c *comparer) xattrs(p string, inA bool) (map[string][]byte, error) {
	names, err := xattr.LList(p)
	if err != nil {
		switch errno := xattrErrno(err); {
		case gone(errno):
			return nil, &vanished{inA}
		case errors.Is(errno, unix.ENOTSUP):
			return nil, nil // no xattr support: no xattrs
		default:
			return nil, fmt.Errorf("treecmp: llistxattr %s: %w", p, errno)
		}
	}
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		if c.opt.IgnoreXattr(n) {
			continue
		}
		v, err := xattr.LGet(p, n)
		if err != nil {
			switch errno := xattrErrno(err); {
			case errors.Is(errno, unix.ENODATA): // removed since listed
				continue
			case gone(errno):
				return nil, &vanished{inA}
			default:
				return nil, fmt.Errorf("treecmp: lgetxattr %s %s: %w", p, n, errno)
			}
		}
		out[n] = v
	}
	return out, nil
}

// xattrErrno strips github.com/pkg/xattr's wrapper, whose message repeats
// the operation and path.
func xattrErrno(err error) error {
	var xe *xattr.Error
	if errors.As(err, &xe) {
		return xe.Err
	}
	return err
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
	return fmt.Sprintf("type %#o", m&unix.S_IFMT)
}

func fmtTime(t unix.Timespec) string { return fmt.Sprintf("%d.%09d", t.Sec, t.Nsec) }

func fmtDev(d uint64) string { return fmt.Sprintf("%d,%d", unix.Major(d), unix.Minor(d)) }

// fmtValue renders an xattr value quoted when it is printable text, in hex
// otherwise (gfids are 16 raw bytes), cut after 64 bytes.
func fmtValue(v []byte) string {
	const max = 64
	cut := ""
	if len(v) > max {
		v, cut = v[:max], fmt.Sprintf("...(%d bytes)", len(v))
	}
	printable := utf8.Valid(v)
	for _, r := range string(v) {
		if !unicode.IsPrint(r) {
			printable = false
			break
		}
	}
	if printable {
		return fmt.Sprintf("%q", v) + cut
	}
	return "0x" + hex.EncodeToString(v) + cut
}
