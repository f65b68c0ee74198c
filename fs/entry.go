package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/journal"
)

var (
	_ = (gofs.NodeCreater)((*node)(nil))
	_ = (gofs.NodeMkdirer)((*node)(nil))
	_ = (gofs.NodeMknoder)((*node)(nil))
	_ = (gofs.NodeSymlinker)((*node)(nil))
	_ = (gofs.NodeLinker)((*node)(nil))
	_ = (gofs.NodeUnlinker)((*node)(nil))
	_ = (gofs.NodeRmdirer)((*node)(nil))
	_ = (gofs.NodeRenamer)((*node)(nil))
)

func caller(ctx context.Context) (uid, gid uint32) {
	if c, ok := fuse.FromContext(ctx); ok {
		return c.Uid, c.Gid
	}
	return 0, 0
}

// record appends r to the journal. It must be called inside an Enter/Exit
// section. A journal that cannot be written fails the operation: applying
// a change without its record would lose it for every target.
func (r *replfs) record(recs ...*journal.Record) syscall.Errno {
	if err := r.j.Append(recs...); err != nil {
		r.log.Error("journal append", zap.Stringer("op", recs[0].Op), zap.Error(err))
		return syscall.EIO
	}
	return 0
}

// newEntry records the creation of name in n (intent first), runs create,
// and on success gives the new inode its gfid and index entry.
// create returns the new inode and, for a created file, its open
// descriptor (else -1), through which the gfid is set without path walks.
func (n *node) newEntry(ctx context.Context, rec journal.Record, isDir bool, out *fuse.EntryOut,
	create func() (*gofs.Inode, int, syscall.Errno)) (*gofs.Inode, syscall.Errno) {
	if n.hidden(rec.Name) {
		return nil, syscall.EPERM
	}
	pg, errno := n.gfid()
	if errno != 0 {
		return nil, errno
	}
	g := gfid.New()
	rec.GFID, rec.Parent = g, pg
	rec.UID, rec.GID = caller(ctx)

	r := n.fs
	r.j.Enter()
	defer r.j.Exit()
	// A new file's writes may bypass the daemon (passthrough): it gets a D
	// record, as an open for writing does, in the same write(2).
	data := journal.Record{Op: journal.OpData, GFID: g}
	if rec.Op == journal.OpCreate {
		errno = r.record(&rec, &data)
	} else {
		errno = r.record(&rec)
	}
	if errno != 0 {
		return nil, errno
	}
	ch, fd, errno := create()
	if errno != 0 {
		return nil, errno
	}
	path := func() string { return n.childPath(rec.Name) }
	if fd >= 0 {
		errno = r.assignFd(fd, path, g)
	} else {
		errno = r.assign(path(), g, isDir, func() (gfid.GFID, string, syscall.Errno) { return pg, rec.Name, 0 })
	}
	if errno != 0 {
		p := path()
		// The inode exists but could not be identified: undo it so
		// that the brick never holds an inode the journal cannot name.
		if isDir {
			unix.Rmdir(p)
		} else {
			unix.Unlink(p)
		}
		return nil, errno
	}
	if cn, ok := ch.Operations().(*node); ok {
		cn.setID(g)
		cn.noCaps.Store(true)
		r.touch(cn, rec.Time)
	}
	r.touch(n, rec.Time)
	if out != nil {
		fixNlink(&out.Attr)
	}
	return ch, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	rec := journal.Record{Op: journal.OpMkdir, Name: name, Mode: mode | syscall.S_IFDIR}
	return n.newEntry(ctx, rec, true, out, func() (*gofs.Inode, int, syscall.Errno) {
		ch, errno := n.LoopbackNode.Mkdir(ctx, name, mode, out)
		return ch, -1, errno
	})
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	rec := journal.Record{Op: journal.OpMknod, Name: name, Mode: mode, Rdev: uint64(rdev)}
	return n.newEntry(ctx, rec, false, out, func() (*gofs.Inode, int, syscall.Errno) {
		ch, errno := n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
		return ch, -1, errno
	})
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	rec := journal.Record{Op: journal.OpSymlink, Name: name, Mode: syscall.S_IFLNK | 0o777, Target: target}
	return n.newEntry(ctx, rec, false, out, func() (*gofs.Inode, int, syscall.Errno) {
		ch, errno := n.LoopbackNode.Symlink(ctx, target, name, out)
		return ch, -1, errno
	})
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	var fh gofs.FileHandle
	rec := journal.Record{Op: journal.OpCreate, Name: name, Mode: mode | syscall.S_IFREG}
	ch, errno := n.newEntry(ctx, rec, false, out, func() (*gofs.Inode, int, syscall.Errno) {
		var ch *gofs.Inode
		var fd int
		var errno syscall.Errno
		ch, fh, fd, errno = n.createFile(ctx, name, flags, mode, out)
		return ch, fd, errno
	})
	if errno != 0 {
		if fh != nil {
			fh.(gofs.FileReleaser).Release(ctx)
		}
		return nil, nil, 0, errno
	}
	cn := ch.Operations().(*node)
	return ch, cn.wrapFile(fh, flags), 0, 0
}

func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if n.hidden(name) {
		return nil, syscall.EPERM
	}
	tn, ok := target.(*node)
	if !ok {
		return nil, syscall.EXDEV
	}
	if _, p := tn.Parent(); p == nil {
		// An O_TMPFILE inode: it has no name to link from (loopback
		// refuses it too), and it was never journaled.
		return nil, syscall.EXDEV
	}
	g, errno := tn.gfid()
	if errno != 0 {
		return nil, errno
	}
	pg, errno := n.gfid()
	if errno != 0 {
		return nil, errno
	}
	r := n.fs
	rec := journal.Record{Op: journal.OpLink, GFID: g, Parent: pg, Name: name}
	r.j.Enter()
	defer r.j.Exit()
	if errno := r.record(&rec); errno != 0 {
		return nil, errno
	}
	ch, errno := n.LoopbackNode.Link(ctx, tn.LoopbackNode, name, out)
	if errno != 0 {
		return nil, errno
	}
	fixNlink(&out.Attr)
	r.touch(tn, rec.Time)
	r.touch(n, rec.Time)
	return ch, 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.remove(ctx, name, journal.OpUnlink)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.remove(ctx, name, journal.OpRmdir)
}

func (n *node) remove(ctx context.Context, name string, op journal.Op) syscall.Errno {
	if n.hidden(name) {
		return syscall.ENOENT
	}
	g, _, errno := n.childGFID(name)
	if errno != 0 {
		return errno
	}
	pg, errno := n.gfid()
	if errno != 0 {
		return errno
	}
	r := n.fs
	rec := journal.Record{Op: op, GFID: g, Parent: pg, Name: name}
	r.j.Enter()
	defer r.j.Exit()
	if errno := r.record(&rec); errno != 0 {
		return errno
	}
	if op == journal.OpRmdir {
		errno = n.LoopbackNode.Rmdir(ctx, name)
	} else {
		errno = n.LoopbackNode.Unlink(ctx, name)
	}
	if errno != 0 {
		return errno
	}
	r.retire.add(retire{g, op == journal.OpRmdir})
	r.touch(n, rec.Time)
	return 0
}

func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	if n.hidden(name) || np.hidden(newName) {
		return syscall.EPERM
	}
	g, srcType, errno := n.childGFID(name)
	if errno != 0 {
		return errno
	}
	pg, errno := n.gfid()
	if errno != 0 {
		return errno
	}
	pg2, errno := np.gfid()
	if errno != 0 {
		return errno
	}
	// What the rename replaces or swaps with: its index entry changes too.
	dg, dstType, errno := np.childGFID(newName)
	if errno == syscall.ENOENT {
		dg, errno = gfid.Zero, 0
	}
	if errno != 0 {
		return errno
	}
	if dg == g {
		// Two names of one inode: rename(2) does nothing.
		return n.LoopbackNode.Rename(ctx, name, np.LoopbackNode, newName, flags)
	}
	r := n.fs
	rec := journal.Record{Op: journal.OpRename, GFID: g, Parent: pg, Name: name, Parent2: pg2, Name2: newName, Flags: flags}
	r.j.Enter()
	defer r.j.Exit()
	if errno := r.record(&rec); errno != 0 {
		return errno
	}
	if errno := n.LoopbackNode.Rename(ctx, name, np.LoopbackNode, newName, flags); errno != 0 {
		return errno
	}
	r.afterRename(g, srcType, pg2, newName)
	if !dg.IsZero() {
		if flags&unix.RENAME_EXCHANGE != 0 {
			r.afterRename(dg, dstType, pg, name)
		} else {
			r.retire.add(retire{dg, dstType == syscall.S_IFDIR})
		}
	}
	r.touch(n, rec.Time)
	r.touch(np, rec.Time)
	return 0
}

func (r *replfs) afterRename(g gfid.GFID, typ uint32, parent gfid.GFID, name string) {
	if typ == syscall.S_IFDIR {
		r.idxErr(r.idx.setDir(g, parent, name), g)
	}
}

func (r *replfs) idxErr(err error, g gfid.GFID) {
	if err != nil {
		r.log.Warn("gfid index update", zap.Stringer("gfid", g), zap.Error(err))
	}
}
