package replicator

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/contenthash"
	"github.com/replfs/replfs/internal/gfid"
)

// ErrNotTarget: a directory is not a replfs target.
var ErrNotTarget = errors.New("not a replfs mirror")

// ErrIndexStale: a directory's gfid-index entry does not lead to it.
var ErrIndexStale = errors.New("gfid index entry leads elsewhere")

// Attach opens an existing mirror of brickID without changing anything.
func (m *Mirror) Attach(brickID string) error {
	ti, ok, err := m.readInfo()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s is %w (no %s/target.json)", m.path, ErrNotTarget, gfid.StateDir)
	}
	switch {
	case ti.Format != TargetFormat:
		return fmt.Errorf("mirror %s: unsupported target format %d (this replfs reads %d)", m.path, ti.Format, TargetFormat)
	case ti.Brick != brickID:
		return fmt.Errorf("%s is a mirror of another brick (%s), not of this one (%s)", m.path, ti.Brick, brickID)
	case ti.Xattr != "trusted" && ti.Xattr != "user":
		return fmt.Errorf("mirror %s: target.json names unknown xattr namespace %q", m.path, ti.Xattr)
	}
	m.use(ti)
	return nil
}

// List reads directory dir where its index entry leads, after checking
// that the directory there is dir: a stale or missing entry is
// ErrIndexStale (a directory the walk found by name, that the replicator
// would not find by gfid), never another directory's listing.
func (m *Mirror) List(dir gfid.GFID, hashBelow int64) ([]FullEntry, error) {
	dp, err := m.dirPath(dir)
	if err != nil {
		if isNoEntry(err) {
			return nil, fmt.Errorf("mirror %s: directory %s: %w (%v)", m.path, dir, ErrIndexStale, err)
		}
		return nil, err
	}
	fd, err := openDir(dp)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("mirror %s: directory %s: %w (to %s, which is gone)", m.path, dir, ErrIndexStale, dp)
		}
		return nil, err
	}
	defer unix.Close(fd)
	var v [16]byte
	n, err := unix.Fgetxattr(fd, m.t.gfidX, v[:])
	if err != nil && err != unix.ENODATA {
		return nil, &fs.PathError{Op: "getxattr gfid", Path: dp, Err: err}
	}
	if got := gfid.GFID(v); n != 16 || got != dir {
		m.forgetDirs()
		what := "has no gfid"
		if n == 16 {
			what = "is " + got.String()
		}
		return nil, fmt.Errorf("mirror %s: directory %s: %w (to %s, which %s)", m.path, dir, ErrIndexStale, dp, what)
	}
	return listFullFD(&m.t, fd, dp, dir == gfid.Root, hashBelow)
}

func (m *Mirror) Repoint(g, parent gfid.GFID, name string) error {
	p, err := m.child(parent, name)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	if st.Mode&sIFMT != sIFDIR {
		return fmt.Errorf("mirror %s: repoint %s: %s is not a directory", m.path, g, p)
	}
	if got, err := m.t.gfidAt(p); err != nil || got != g {
		if err == nil {
			err = fmt.Errorf("it has gfid %s", gfidString(got))
		}
		return fmt.Errorf("mirror %s: repoint %s to %s: %w", m.path, g, p, err)
	}
	m.forgetDirs()
	return m.setDirPointer(g, parent, name)
}

func (m *Mirror) LookupFull(parent gfid.GFID, name string) (FullEntry, bool, error) {
	p, err := m.child(parent, name)
	if err != nil {
		if isNoEntry(err) {
			return FullEntry{}, false, nil
		}
		return FullEntry{}, false, err
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR {
			return FullEntry{}, false, nil
		}
		return FullEntry{}, false, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	e, err := fullEntry(&m.t, p, &st)
	e.Name = name
	return e, err == nil, err
}

func (m *Mirror) Hash(g gfid.GFID, size int64) (contenthash.Sum, int64, error) {
	ip := m.t.indexPath(g)
	fd, err := unix.Open(ip, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME|unix.O_NOFOLLOW, 0)
	if err == unix.EPERM {
		fd, err = unix.Open(ip, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		if err == unix.ENOENT {
			return contenthash.Sum{}, 0, errNoEntry
		}
		return contenthash.Sum{}, 0, &fs.PathError{Op: "open", Path: ip, Err: err}
	}
	defer unix.Close(fd)
	s, n, err := contenthash.FD(fd, size)
	if err != nil {
		return s, n, &fs.PathError{Op: "read", Path: ip, Err: err}
	}
	return s, n, nil
}

func (m *Mirror) HashDir(dir gfid.GFID, reqs []HashReq) error {
	dp, err := m.dirPath(dir)
	if err != nil {
		return err
	}
	dfd, err := unix.Open(dp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: dp, Err: err}
	}
	defer unix.Close(dfd)
	for i := range reqs {
		r := &reqs[i]
		r.Sum, r.N, r.Err = hashAt(dfd, r.Name, r.Size)
		if r.Err != nil {
			r.Err = &fs.PathError{Op: "hash", Path: dp + "/" + r.Name, Err: r.Err}
		}
	}
	return nil
}

// hashAt hashes regular file name in directory dfd (not following a
// symlink, not touching its atime).
func hashAt(dfd int, name string, size int64) (contenthash.Sum, int64, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME|unix.O_NOFOLLOW, 0)
	if err == unix.EPERM {
		fd, err = unix.Openat(dfd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return contenthash.Sum{}, 0, err
	}
	defer unix.Close(fd)
	return contenthash.FD(fd, size)
}

// Relink replaces parent/name with a hard link to g's indexed inode, in
// one rename (the name never disappears).
func (m *Mirror) Relink(g, parent gfid.GFID, name string) error {
	p, _, err := m.holds(parent, name, g)
	if err != nil {
		return err
	}
	ip := m.t.indexPath(g)
	var st unix.Stat_t
	if err := unix.Lstat(ip, &st); err == unix.ENOENT {
		// The index has lost g (a crash between making the name and
		// indexing it, or damage): this name's inode becomes g's.
		return m.Adopt(parent, name, g)
	}
	var pst unix.Stat_t
	if unix.Lstat(p, &pst) == nil && pst.Ino == st.Ino && pst.Dev == st.Dev {
		// Already that inode (rename(2) of a link over another link of
		// the same inode would do nothing and leave the temporary link):
		// only its name list may lack this name.
		return m.editNames(ip, nil, &nameRef{parent, name})
	}
	tmp := filepath.Join(m.path, ".replfs/tmp", g.String()+".link"+strconv.FormatUint(m.tmpSeq.Add(1), 10))
	if err := unix.Linkat(unix.AT_FDCWD, ip, unix.AT_FDCWD, tmp, 0); err != nil {
		if err == unix.ENOENT {
			return errNoEntry
		}
		return &fs.PathError{Op: "link", Path: tmp, Err: err}
	}
	if err := unix.Rename(tmp, p); err != nil {
		unix.Unlink(tmp)
		return &fs.PathError{Op: "rename", Path: p, Err: err}
	}
	return m.editNames(ip, nil, &nameRef{parent, name})
}
