package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/journal"
)

var (
	_ = (gofs.NodeOpener)((*node)(nil))
	_ = (gofs.NodeOpendirHandler)((*node)(nil))
	_ = (gofs.NodeFsyncer)((*node)(nil))
)

func writable(flags uint32) bool {
	return flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0
}

// file is an open regular file. Reads and writes go to the embedded
// loopback file (or, with kernel passthrough, straight to the brick); a file
// open for writing gets D records at open, in every segment while it stays
// open, and at release.
type file struct {
	*gofs.LoopbackFile
	n *node
}

var (
	_ = (gofs.FileFsyncer)((*file)(nil))
	_ = (gofs.FileReleaser)((*file)(nil))
)

func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if !writable(flags) {
		return n.LoopbackNode.Open(ctx, flags)
	}
	g, errno := n.gfid()
	if errno != 0 {
		return nil, 0, errno
	}
	r := n.fs
	r.j.Enter()
	defer r.j.Exit()
	rec := journal.Record{Op: journal.OpData, GFID: g}
	if errno := r.record(&rec); errno != 0 {
		return nil, 0, errno
	}
	if errno := n.dropPrivs(ctx, g); errno != 0 {
		return nil, 0, errno
	}
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	if flags&syscall.O_TRUNC != 0 {
		r.touch(n, rec.Time)
	}
	return n.wrapFile(fh, flags), fuseFlags, 0
}

func (n *node) wrapFile(fh gofs.FileHandle, flags uint32) gofs.FileHandle {
	lf, ok := fh.(*gofs.LoopbackFile)
	if !ok || !writable(flags) {
		return fh
	}
	r := n.fs
	r.mu.Lock()
	r.openWrite[n]++
	r.mu.Unlock()
	return &file{LoopbackFile: lf, n: n}
}

func (f *file) Release(ctx context.Context) syscall.Errno {
	errno := f.LoopbackFile.Release(ctx)
	n, r := f.n, f.n.fs
	r.j.Enter()
	if g, e := n.gfid(); e == 0 {
		rec := journal.Record{Op: journal.OpData, GFID: g}
		r.record(&rec)
		r.touch(n, rec.Time)
	}
	r.j.Exit()
	r.mu.Lock()
	if r.openWrite[n]--; r.openWrite[n] <= 0 {
		delete(r.openWrite, n)
	}
	r.mu.Unlock()
	return errno
}

// Fsync makes the journal durable too: an application that synced its
// data must not lose the record that makes it replicate.
func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if err := f.n.fs.j.Sync(); err != nil {
		f.n.fs.log.Error("journal sync", zap.Error(err))
		return syscall.EIO
	}
	return f.LoopbackFile.Fsync(ctx, flags)
}

// Fsync without a handle (fsync on a node the kernel has no handle for).
func (n *node) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno {
	if err := n.fs.j.Sync(); err != nil {
		return syscall.EIO
	}
	if fs, ok := f.(gofs.FileFsyncer); ok {
		return fs.Fsync(ctx, flags)
	}
	return 0
}

// onRollover runs inside the journal's quiesced rollover: every file still
// open for writing gets a D record in the new segment.
func (r *replfs) onRollover() {
	r.mu.Lock()
	open := make([]*node, 0, len(r.openWrite))
	for n := range r.openWrite {
		open = append(open, n)
	}
	r.mu.Unlock()
	for _, n := range open {
		if !n.gfidOK.Load() {
			continue
		}
		rec := journal.Record{Op: journal.OpData, GFID: n.id}
		if r.record(&rec) == 0 {
			r.touch(n, rec.Time)
		}
	}
	r.flushXtimeAsync()
}

// dir is an open directory; the root's listing hides .replfs.
type dir struct {
	ds     gofs.FileHandle
	n      *node
	filter bool
}

var (
	_ = (gofs.FileReaddirenter)((*dir)(nil))
	_ = (gofs.FileSeekdirer)((*dir)(nil))
	_ = (gofs.FileReleasedirer)((*dir)(nil))
	_ = (gofs.FileFsyncdirer)((*dir)(nil))
)

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	ds, fuseFlags, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dir{ds: ds, n: n, filter: n.isRoot()}, fuseFlags, 0
}

func (d *dir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	rd := d.ds.(gofs.FileReaddirenter)
	for {
		de, errno := rd.Readdirent(ctx)
		if errno != 0 || de == nil {
			return de, errno
		}
		if d.filter && de.Name == gfid.StateDir {
			continue
		}
		return de, 0
	}
}

func (d *dir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if s, ok := d.ds.(gofs.FileSeekdirer); ok {
		return s.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (d *dir) Releasedir(ctx context.Context, flags uint32) {
	if r, ok := d.ds.(gofs.FileReleasedirer); ok {
		r.Releasedir(ctx, flags)
	}
}

func (d *dir) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	if err := d.n.fs.j.Sync(); err != nil {
		return syscall.EIO
	}
	if s, ok := d.ds.(gofs.FileFsyncdirer); ok {
		return s.Fsyncdir(ctx, flags)
	}
	return 0
}

var _ = (gofs.NodeCopyFileRanger)((*node)(nil))

// CopyFileRange hands loopback its own file handles: it only copies
// between *LoopbackFile handles and would refuse replfs's wrapper. The
// destination is open for writing, so its D records are already kept.
func (n *node) CopyFileRange(ctx context.Context, fhIn gofs.FileHandle, offIn uint64, out *gofs.Inode, fhOut gofs.FileHandle,
	offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	return n.LoopbackNode.CopyFileRange(ctx, unwrap(fhIn), offIn, out, unwrap(fhOut), offOut, length, flags)
}

func unwrap(fh gofs.FileHandle) gofs.FileHandle {
	if f, ok := fh.(*file); ok {
		return f.LoopbackFile
	}
	return fh
}

var _ = (gofs.NodeFlusher)((*node)(nil))

// Flush answers ENOSYS, which tells the kernel never to send FLUSH again:
// one round trip less per close. loopback's flush only closed a dup of the
// descriptor, which on a local brick does nothing (its locks are
// open-file-description locks, released at RELEASE), and replfs journals
// nothing at flush: D records come at open, per segment and at release.
func (n *node) Flush(ctx context.Context, f gofs.FileHandle) syscall.Errno {
	return syscall.ENOSYS
}
