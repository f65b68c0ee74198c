package replicator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/contenthash"
	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/layout"
	"github.com/replfs/replfs/internal/target"
)

// Attach opens an existing mirror of brickID without changing anything.
func (m *Mirror) Attach(ctx context.Context, brickID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ti, ok, err := m.readInfo()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s is %w (no %s/target.json)", m.path, target.ErrNotTarget, gfid.StateDir)
	}
	switch {
	case ti.Format != TargetFormat:
		return fmt.Errorf("mirror %s: unsupported target format %d (this replfs reads %d)", m.path, ti.Format, TargetFormat)
	case ti.Brick != brickID:
		return fmt.Errorf("%s is a mirror %w (%s), not of this one (%s)", m.path, target.ErrOtherBrick, ti.Brick, brickID)
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
func (m *Mirror) doList(ctx context.Context, dir gfid.GFID, hashBelow int64) ([]target.FullEntry, error) {
	dd, err := m.openDir(dir)
	if err != nil {
		if isNoEntry(err) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
			what := "is missing or leads to another directory"
			if rel, rerr := m.dirRel(dir, 0); rerr == nil {
				what = "leads to " + m.abs(rel, "") + ", which is not it"
			}
			return nil, fmt.Errorf("mirror %s: directory %s: %w (%s: %v)", m.path, dir, target.ErrIndexStale, what, err)
		}
		return nil, err
	}
	defer dd.put()
	fd, err := dd.reopen()
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return listFullFD(&m.t, fd, m.path, dir == gfid.Root, hashBelow)
}

func (m *Mirror) doRepoint(ctx context.Context, g, parent gfid.GFID, name string) error {
	d, err := m.openParent(parent, name)
	if err != nil {
		return err
	}
	defer d.put()
	var st unix.Stat_t
	if err := layout.Lstat(d.fd, name, &st); err != nil {
		return &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	if st.Mode&sIFMT != sIFDIR {
		return fmt.Errorf("mirror %s: repoint %s: %s is not a directory", m.path, g, name)
	}
	if got, err := layout.GFIDOf(d.fd, name, m.t.gfidX); err != nil || got != g {
		if err == nil {
			err = fmt.Errorf("it has gfid %s", gfidString(got))
		}
		return fmt.Errorf("mirror %s: repoint %s to %s: %w", m.path, g, name, err)
	}
	m.forgetDirs()
	return m.setDirPointer(g, parent, name)
}

func (m *Mirror) doLookupFull(ctx context.Context, parent gfid.GFID, name string) (target.FullEntry, bool, error) {
	d, err := m.openParent(parent, name)
	if err != nil {
		if isNoEntry(err) {
			return target.FullEntry{}, false, nil
		}
		return target.FullEntry{}, false, err
	}
	defer d.put()
	e, ok, err := statEntry(&m.t, d.fd, m.path, name)
	return e, ok && err == nil, err
}

func (m *Mirror) doHash(ctx context.Context, g gfid.GFID, size int64) (contenthash.Sum, int64, error) {
	bk, name, err := m.bucket(g, false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return contenthash.Sum{}, 0, errNoEntry
		}
		return contenthash.Sum{}, 0, err
	}
	defer bk.put()
	s, n, err := hashAt(bk.fd, name, size)
	if err != nil {
		if err == unix.ENOENT {
			return contenthash.Sum{}, 0, errNoEntry
		}
		return s, n, &fs.PathError{Op: "hash", Path: m.path + "/" + g.IndexPath(), Err: err}
	}
	return s, n, nil
}

func (m *Mirror) doHashDir(ctx context.Context, dir gfid.GFID, reqs []target.HashReq) error {
	d, err := m.openDir(dir)
	if err != nil {
		return err
	}
	defer d.put()
	for i := range reqs {
		r := &reqs[i]
		r.Sum, r.N, r.Err = hashAt(d.fd, r.Name, r.Size)
		if r.Err != nil {
			r.Err = &fs.PathError{Op: "hash", Path: r.Name, Err: r.Err}
		}
	}
	return nil
}

// hashAt hashes regular file name in directory d.fd (not following a
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
func (m *Mirror) doRelink(ctx context.Context, g, parent gfid.GFID, name string) error {
	hd, pst, err := m.holds(parent, name, g)
	if err != nil {
		return err
	}
	defer hd.put()
	bk, ename, err := m.bucket(g, true)
	if err != nil {
		return err
	}
	defer bk.put()
	var st unix.Stat_t
	if err := layout.Lstat(bk.fd, ename, &st); err == unix.ENOENT {
		// The index has lost g (a crash between making the name and
		// indexing it, or damage): this name's inode becomes g's.
		return m.Adopt(ctx, parent, name, g)
	}
	if pst.Ino == st.Ino && pst.Dev == st.Dev {
		// Already that inode (rename(2) of a link over another link of
		// the same inode would do nothing and leave the temporary link):
		// only its name list may lack this name.
		return m.editNames(bk.fd, ename, nil, &nameRef{parent, name})
	}
	if st.Mode&sIFMT == sIFDIR || st.Mode&sIFMT == sIFLNK && st.Nlink == 1 {
		return fmt.Errorf("mirror %s: relink %s: the index holds a directory", m.path, name)
	}
	tfd, err := m.openRel(tmpDir)
	if err != nil {
		return err
	}
	defer unix.Close(tfd)
	tmp := g.String() + ".link" + strconv.FormatUint(m.tmpSeq.Add(1), 10)
	if err := unix.Linkat(bk.fd, ename, tfd, tmp, 0); err != nil {
		if err == unix.ENOENT {
			return errNoEntry
		}
		return &fs.PathError{Op: "link", Path: tmp, Err: err}
	}
	if err := unix.Renameat(tfd, tmp, hd.fd, name); err != nil {
		unix.Unlinkat(tfd, tmp, 0)
		return &fs.PathError{Op: "rename", Path: name, Err: err}
	}
	return m.editNames(bk.fd, ename, nil, &nameRef{parent, name})
}
