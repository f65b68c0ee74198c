package layout

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
)

// ErrNotPointer: an index entry that is not a directory pointer replfs
// wrote — a user's symlink (indexed by a hard link, so it has two links
// or more), or anything malformed. It is never followed.
var ErrNotPointer = errors.New("not a directory pointer")

// Bucket opens the index directory holding g's entry
// (.replfs/gfid/xx/yy), confined, and returns it with the entry's name.
func (r *Root) Bucket(g gfid.GFID) (int, string, error) {
	s := g.String()
	fd, err := r.OpenDir(gfid.IndexDir + "/" + s[0:2] + "/" + s[2:4])
	return fd, s, err
}

// MakeBucket is Bucket that makes the xx/yy directories when missing.
func (r *Root) MakeBucket(g gfid.GFID) (int, string, error) {
	fd, name, err := r.Bucket(g)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return fd, name, err
	}
	s := g.String()
	// Most new buckets are a new yy in an existing xx: one mkdirat there
	// instead of a walk from the root.
	if xfd, err := r.OpenDir(gfid.IndexDir + "/" + s[0:2]); err == nil {
		err = unix.Mkdirat(xfd, s[2:4], 0o700)
		unix.Close(xfd)
		if err == nil || err == unix.EEXIST {
			return r.Bucket(g)
		}
	}
	if err := r.mkBucket(s[0:2], s[2:4]); err != nil {
		return -1, "", err
	}
	return r.Bucket(g)
}

// mkBucket makes .replfs/gfid/xx/yy from the index directory down (the
// index itself is made by Open).
func (r *Root) mkBucket(xx, yy string) error {
	ifd, err := r.OpenDir(gfid.IndexDir)
	if err != nil {
		return err
	}
	defer unix.Close(ifd)
	if err := unix.Mkdirat(ifd, xx, 0o700); err != nil && err != unix.EEXIST {
		return &fs.PathError{Op: "mkdir", Path: r.Abs(gfid.IndexDir + "/" + xx), Err: err}
	}
	xfd, err := OpenBeneath(ifd, xx, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: r.Abs(gfid.IndexDir + "/" + xx), Err: err}
	}
	defer unix.Close(xfd)
	if err := unix.Mkdirat(xfd, yy, 0o700); err != nil && err != unix.EEXIST {
		return &fs.PathError{Op: "mkdir", Path: r.Abs(gfid.IndexDir + "/" + xx + "/" + yy), Err: err}
	}
	return nil
}

// ReadPointer reads directory pointer bfd/name: the directory's parent
// and name. Only a symlink with a single link and exactly the shape
// gfid.DirPointer writes is a pointer: ../../xx/yy/<parent>/<name>, xx/yy
// the parent's, name a valid entry name (never "." or ".."), not the
// state directory at the root. isRoot reports the root's own pointer.
func ReadPointer(bfd int, name string) (parent gfid.GFID, dir string, isRoot bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(bfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return gfid.Zero, "", false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Nlink != 1 {
		return gfid.Zero, "", false, ErrNotPointer
	}
	target, err := Readlink(bfd, name)
	if err != nil {
		return gfid.Zero, "", false, err
	}
	if target == gfid.RootPointer {
		return gfid.Zero, "", true, nil
	}
	p, d, err := ParsePointer(target)
	return p, d, false, err
}

// ParsePointer parses a directory pointer's target.
func ParsePointer(target string) (gfid.GFID, string, error) {
	parts := strings.Split(target, "/")
	if len(parts) != 6 || parts[0] != ".." || parts[1] != ".." {
		return gfid.Zero, "", fmt.Errorf("%w: %q", ErrNotPointer, target)
	}
	p, err := gfid.Parse(parts[4])
	if err != nil {
		return gfid.Zero, "", fmt.Errorf("%w: %q", ErrNotPointer, target)
	}
	s := p.String()
	if parts[2] != s[0:2] || parts[3] != s[2:4] || ValidName(parts[5]) != nil ||
		p == gfid.Root && parts[5] == gfid.StateDir {
		return gfid.Zero, "", fmt.Errorf("%w: %q", ErrNotPointer, target)
	}
	return p, parts[5], nil
}

// GFIDOf reads the gfid xattr attr of dfd/name; zero when it has none or
// one of the wrong length.
func GFIDOf(dfd int, name, attr string) (gfid.GFID, error) {
	var b [16]byte
	n, err := Getxattr(dfd, name, attr, b[:])
	switch {
	case err == unix.ENODATA || err == unix.ERANGE:
		return gfid.Zero, nil
	case err != nil:
		return gfid.Zero, err
	case n != 16:
		return gfid.Zero, nil
	}
	return gfid.GFID(b), nil
}
