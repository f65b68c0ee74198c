package fs

import (
	"bytes"
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/journal"
)

var (
	_ = (gofs.NodeSetattrer)((*node)(nil))
	_ = (gofs.NodeGetxattrer)((*node)(nil))
	_ = (gofs.NodeSetxattrer)((*node)(nil))
	_ = (gofs.NodeRemovexattrer)((*node)(nil))
	_ = (gofs.NodeListxattrer)((*node)(nil))
)

func setattrMask(in *fuse.SetAttrIn) uint32 {
	var m uint32
	if in.Valid&fuse.FATTR_MODE != 0 {
		m |= journal.AttrMode
	}
	if in.Valid&(fuse.FATTR_UID|fuse.FATTR_GID) != 0 {
		m |= journal.AttrOwner
	}
	if in.Valid&(fuse.FATTR_ATIME|fuse.FATTR_MTIME|fuse.FATTR_ATIME_NOW|fuse.FATTR_MTIME_NOW) != 0 {
		m |= journal.AttrTimes
	}
	if in.Valid&fuse.FATTR_SIZE != 0 {
		m |= journal.AttrSize
	}
	return m
}

func (n *node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	mask := setattrMask(in)
	if mask == 0 {
		// Only FATTR_FH / lock-owner bits: nothing changes.
		return n.LoopbackNode.Setattr(ctx, f, in, out)
	}
	g, errno := n.gfid()
	if errno != 0 {
		return errno
	}
	r := n.fs
	r.j.Enter()
	defer r.j.Exit()
	rec := journal.Record{Op: journal.OpSetattr, GFID: g, Mask: mask}
	if errno := r.record(&rec); errno != 0 {
		return errno
	}
	if mask&journal.AttrSize != 0 {
		d := journal.Record{Op: journal.OpData, GFID: g}
		if errno := r.record(&d); errno != 0 {
			return errno
		}
	}
	errno = n.LoopbackNode.Setattr(ctx, f, in, out)
	if errno == 0 && in.Valid&fuse.FATTR_KILL_SUIDGID != 0 {
		if errno = n.setattrKill(in, n.path(), g); errno == 0 {
			errno = n.LoopbackNode.Getattr(ctx, f, out)
		}
	}
	if errno == 0 {
		fixNlink(&out.Attr)
		r.touch(n, rec.Time)
	}
	return errno
}

// capsXattr is what the kernel asks for before every write and chown of a
// file (to drop file capabilities); passthrough does not spare that round
// trip, so the answer is at least kept cheap.
const capsXattr = "security.capability"

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if n.fs.isOwnXattr(attr) {
		if attr == gfid.BrickPathXattr && n.isRoot() {
			return n.fs.brickPath(dest)
		}
		return 0, syscall.ENODATA
	}
	if attr == capsXattr && n.noCaps.Load() {
		return 0, syscall.ENODATA
	}
	sz, errno := n.LoopbackNode.Getxattr(ctx, attr, dest)
	if attr == capsXattr && errno == syscall.ENODATA {
		// Every later change of it comes through Setxattr below.
		n.noCaps.Store(true)
	}
	return sz, errno
}

func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if attr == capsXattr {
		n.noCaps.Store(false)
	}
	return n.changeXattr(ctx, journal.OpSetxattr, attr, func() syscall.Errno {
		return n.LoopbackNode.Setxattr(ctx, attr, data, flags)
	})
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return n.changeXattr(ctx, journal.OpRemovexattr, attr, func() syscall.Errno {
		return n.LoopbackNode.Removexattr(ctx, attr)
	})
}

func (n *node) changeXattr(ctx context.Context, op journal.Op, attr string, apply func() syscall.Errno) syscall.Errno {
	if n.fs.isOwnXattr(attr) {
		return syscall.EPERM
	}
	g, errno := n.gfid()
	if errno != 0 {
		return errno
	}
	r := n.fs
	r.j.Enter()
	defer r.j.Exit()
	rec := journal.Record{Op: op, GFID: g, Xattr: attr}
	if errno := r.record(&rec); errno != 0 {
		return errno
	}
	if errno := apply(); errno != 0 {
		return errno
	}
	r.touch(n, rec.Time)
	return 0
}

// Listxattr hides replfs's own xattrs. The kernel first asks for the size
// with an empty buffer; the size reported must then be the filtered one, so
// the list is always read in full.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	buf := make([]byte, 4096)
	for {
		sz, errno := n.LoopbackNode.Listxattr(ctx, buf)
		if errno == syscall.ERANGE {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		out := filterXattrs(buf[:sz], n.fs.isOwnXattr)
		if len(dest) == 0 {
			return uint32(len(out)), 0
		}
		if len(out) > len(dest) {
			return uint32(len(out)), syscall.ERANGE
		}
		return uint32(copy(dest, out)), 0
	}
}

func filterXattrs(list []byte, own func(string) bool) []byte {
	out := list[:0:0]
	for _, name := range bytes.Split(list, []byte{0}) {
		if len(name) == 0 || own(string(name)) {
			continue
		}
		out = append(out, name...)
		out = append(out, 0)
	}
	return out
}

// brickPath answers gfid.BrickPathXattr.
func (r *replfs) brickPath(dest []byte) (uint32, syscall.Errno) {
	p := r.brick.Path
	if len(dest) < len(p) {
		return uint32(len(p)), syscall.ERANGE
	}
	return uint32(copy(dest, p)), 0
}
