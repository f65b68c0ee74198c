package memtarget

import (
	"context"
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// newInode checks that inode g can be made (a gfid names one inode: a
// second would be a copy the engine did not ask for) and returns it,
// not yet in the tree.
func (t *Target) newInode(g gfid.GFID, a target.Attr) (*inode, error) {
	tr := t.p.live
	if g.IsZero() {
		return nil, fmt.Errorf("no gfid given")
	}
	if n, ok := tr.byGFID(g); ok {
		return nil, fmt.Errorf("gfid %s is already %s: %w", g, tr.paths(n)[0], target.ErrExist)
	}
	now := t.nowNano()
	n := &inode{ino: tr.nextIno, g: g, mode: a.Type() | a.Mode&0o7777, uid: a.UID, gid: a.GID,
		atime: now, mtime: now, ctime: now}
	tr.nextIno++
	return n, nil
}

// insert adds the new inode n as d/name, indexed.
func (t *Target) insert(d *inode, name string, n *inode) {
	tr := t.p.live
	tr.inodes[n.ino] = n
	tr.index[n.g] = n.ino
	tr.add(d, name, n, t.nowNano())
}

// Make creates parent/name as inode g. Times are the time of the call,
// as on disk: the engine sets them afterwards (SetMeta).
func (t *Target) Make(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID, a target.Attr, link string, x target.Xattrs) error {
	if err := t.begin(ctx); err != nil {
		return err
	}
	defer t.end()
	tr := t.p.live
	d, err := tr.free(parent, name)
	if err != nil {
		return t.errorf("make %s: %w", name, err)
	}
	p := tr.path(d, name)
	switch a.Type() {
	case unix.S_IFDIR, unix.S_IFREG, unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFCHR, unix.S_IFBLK:
	case unix.S_IFLNK:
		if link == "" {
			return t.errorf("make %s: empty symlink target: %w", p, unix.ENOENT)
		}
	default:
		return t.errorf("make %s: file type %o: %w", p, a.Type(), unix.EINVAL)
	}
	if err := t.p.failure(p); err != nil {
		return err
	}
	n, err := t.newInode(g, a)
	if err != nil {
		return t.errorf("make %s: %w", p, err)
	}
	switch a.Type() {
	case unix.S_IFDIR:
		n.kids = map[string]uint64{}
	case unix.S_IFLNK:
		n.link = link
	case unix.S_IFCHR, unix.S_IFBLK:
		n.rdev = a.Rdev
	}
	n.xattrs = cloneXattrs(x)
	t.insert(d, name, n)
	t.logOp("make %s", p)
	return nil
}

// CreateFile reads src whole before the file exists, so nothing is ever
// seen at parent/name but the complete file.
func (t *Target) CreateFile(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID, src target.Source, a target.Attr, x target.Xattrs) (int64, error) {
	if err := t.begin(ctx); err != nil {
		return 0, err
	}
	_, err := t.p.live.free(parent, name)
	t.end()
	if err != nil {
		return 0, t.errorf("create %s: %w", name, err)
	}
	data, err := readSource(ctx, src)
	if err != nil {
		return 0, t.errorf("create %s: %w", name, err)
	}
	if err := t.begin(ctx); err != nil {
		return 0, err
	}
	defer t.end()
	tr := t.p.live
	d, err := tr.free(parent, name) // again: the tree may have changed meanwhile
	if err != nil {
		return 0, t.errorf("create %s: %w", name, err)
	}
	p := tr.path(d, name)
	if err := t.p.failure(p); err != nil {
		return 0, err
	}
	n, err := t.newInode(g, target.Attr{Mode: unix.S_IFREG | a.Mode&0o7777, UID: a.UID, GID: a.GID})
	if err != nil {
		return 0, t.errorf("create %s: %w", p, err)
	}
	n.data, n.atime, n.mtime, n.xattrs = data, a.Atime, a.Mtime, cloneXattrs(x)
	t.insert(d, name, n)
	t.logOp("create %s", p)
	return int64(len(data)), nil
}

// readSource reads src from offset 0 to its Size. A source that ends
// early (it shrank since its size was taken) gives what it had, as a
// copy from a brick file does.
func readSource(ctx context.Context, src target.Source) ([]byte, error) {
	size := src.Size()
	if size < 0 {
		return nil, fmt.Errorf("source %s: negative size %d", src.Name(), size)
	}
	buf := make([]byte, size)
	var off int64
	for off < size {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k, err := src.ReadAt(buf[off:min(size, off+1<<20)], off)
		off += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s at %d: %w", src.Name(), off, err)
		}
		if k == 0 {
			return nil, fmt.Errorf("read %s at %d: no progress", src.Name(), off)
		}
	}
	return buf[:off], nil
}

// WriteFile swaps g's content for src's in one step: every name shares
// the inode, so every name shows it at once.
func (t *Target) WriteFile(ctx context.Context, g gfid.GFID, src target.Source, a target.Attr, x target.Xattrs) (int64, error) {
	if err := t.begin(ctx); err != nil {
		return 0, err
	}
	_, err := t.regular(g)
	t.end()
	if err != nil {
		return 0, t.errorf("write: %w", err)
	}
	data, err := readSource(ctx, src)
	if err != nil {
		return 0, t.errorf("write %s: %w", g, err)
	}
	if err := t.begin(ctx); err != nil {
		return 0, err
	}
	defer t.end()
	n, err := t.regular(g)
	if err != nil {
		return 0, t.errorf("write: %w", err)
	}
	paths := t.p.live.paths(n)
	if err := t.p.failure(paths...); err != nil {
		return 0, err
	}
	n.data, n.xattrs = data, cloneXattrs(x)
	n.mode = unix.S_IFREG | a.Mode&0o7777
	n.uid, n.gid, n.atime, n.mtime, n.ctime = a.UID, a.GID, a.Atime, a.Mtime, t.nowNano()
	t.logOp("write %s", paths[0])
	return int64(len(data)), nil
}

// regular finds regular file g.
func (t *Target) regular(g gfid.GFID) (*inode, error) {
	n, ok := t.p.live.byGFID(g)
	switch {
	case !ok:
		return nil, fmt.Errorf("no file %s: %w", g, target.ErrNotExist)
	case !n.isReg():
		return nil, fmt.Errorf("%s is not a regular file: %w", g, target.ErrNotExist)
	}
	return n, nil
}

func (t *Target) Unlink(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error {
	return t.remove(ctx, "unlink", parent, name, g, func(n *inode) error {
		if n.isDir() {
			return unix.EISDIR
		}
		return nil
	})
}

func (t *Target) Rmdir(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error {
	return t.remove(ctx, "rmdir", parent, name, g, func(n *inode) error {
		switch {
		case !n.isDir():
			return unix.ENOTDIR
		case len(n.kids) > 0:
			return unix.ENOTEMPTY
		}
		return nil
	})
}

// RemoveAll removes parent/name with everything below it.
func (t *Target) RemoveAll(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error {
	return t.remove(ctx, "removeall", parent, name, g, func(*inode) error { return nil })
}

// remove removes parent/name, which must hold g and pass ok.
func (t *Target) remove(ctx context.Context, op string, parent gfid.GFID, name string, g gfid.GFID, ok func(*inode) error) error {
	if err := t.begin(ctx); err != nil {
		return err
	}
	defer t.end()
	tr := t.p.live
	d, n, err := tr.holds(parent, name, g)
	if err != nil {
		return t.errorf("%s %s: %w", op, name, err)
	}
	p := tr.path(d, name)
	if err := ok(n); err != nil {
		return t.errorf("%s %s: %w", op, p, err)
	}
	if err := t.p.failure(p); err != nil {
		return err
	}
	tr.removeTree(d, name, t.nowNano())
	t.logOp("%s %s", op, p)
	return nil
}
