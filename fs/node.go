package fs

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/journal"
)

// replfs is the state shared by every node of one mount.
type replfs struct {
	brick  *Brick
	j      *journal.Journal
	idx    *index
	retire *retirer
	log    *zap.Logger
	root   *node

	mu sync.Mutex
	// openWrite counts open-for-write handles per node: with passthrough
	// the daemon never sees their writes, so a D record is written for
	// each of them in every segment while they stay open.
	openWrite map[*node]int
	// dirty holds the nodes changed since the last xtime flush, with the
	// time of their latest record.
	dirty map[*node]int64

	xtimeMu sync.Mutex // one xtime flush at a time
	xtimeWG sync.WaitGroup
}

// node is one inode of the mount: go-fuse's loopback node plus the gfid.
type node struct {
	*gofs.LoopbackNode
	fs *replfs

	gfidMu sync.Mutex
	gfidOK atomic.Bool
	id     gfid.GFID

	// noCaps: the inode is known to have no security.capability xattr.
	noCaps atomic.Bool
}

var (
	_ = (gofs.NodeWrapChilder)((*node)(nil))
	_ = (gofs.NodeLookuper)((*node)(nil))
	_ = (gofs.NodeGetattrer)((*node)(nil))
	_ = (gofs.NodeStatxer)((*node)(nil))
)

func (n *node) WrapChild(ctx context.Context, ops gofs.InodeEmbedder) gofs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*gofs.LoopbackNode), fs: n.fs}
}

func (n *node) isRoot() bool { return n == n.fs.root }

// path is the node's absolute path in the brick.
func (n *node) path() string {
	return filepath.Join(n.fs.brick.Path, n.Path(nil))
}

func (n *node) childPath(name string) string {
	return filepath.Join(n.fs.brick.Path, n.Path(nil), name)
}

// hidden reports whether name in n is replfs's own state directory.
func (n *node) hidden(name string) bool {
	return name == gfid.StateDir && n.isRoot()
}

// gfid returns the node's gfid, reading it from the brick the first time
// and assigning one to an inode that predates the mount.
func (n *node) gfid() (gfid.GFID, syscall.Errno) {
	if n.gfidOK.Load() {
		return n.id, 0
	}
	n.gfidMu.Lock()
	defer n.gfidMu.Unlock()
	if n.gfidOK.Load() {
		return n.id, 0
	}
	if n.isRoot() {
		n.setID(gfid.Root)
		return n.id, 0
	}
	g, errno := n.fs.loadOrAssign(n.path(), n.Mode()&syscall.S_IFMT == syscall.S_IFDIR, n.parentInfo)
	if errno != 0 {
		return gfid.Zero, errno
	}
	n.setID(g)
	return g, 0
}

func (n *node) setID(g gfid.GFID) {
	n.id = g
	n.gfidOK.Store(true)
}

// parentInfo gives a directory's parent gfid and name, for its index
// pointer.
func (n *node) parentInfo() (gfid.GFID, string, syscall.Errno) {
	name, p := n.Parent()
	if p == nil {
		return gfid.Zero, "", syscall.ENOENT
	}
	pn, ok := p.Operations().(*node)
	if !ok {
		return gfid.Zero, "", syscall.EIO
	}
	pg, errno := pn.gfid()
	return pg, name, errno
}

// childGFID returns the gfid of the entry name in n, and whether it is a
// directory.
func (n *node) childGFID(name string) (gfid.GFID, uint32, syscall.Errno) {
	if ch := n.GetChild(name); ch != nil {
		if cn, ok := ch.Operations().(*node); ok {
			g, errno := cn.gfid()
			return g, ch.Mode() & syscall.S_IFMT, errno
		}
	}
	var st unix.Stat_t
	p := n.childPath(name)
	if err := unix.Lstat(p, &st); err != nil {
		return gfid.Zero, 0, gofs.ToErrno(err)
	}
	isDir := st.Mode&syscall.S_IFMT == syscall.S_IFDIR
	pg, errno := n.gfid()
	if errno != 0 {
		return gfid.Zero, 0, errno
	}
	g, errno := n.fs.loadOrAssign(p, isDir, func() (gfid.GFID, string, syscall.Errno) { return pg, name, 0 })
	return g, st.Mode & syscall.S_IFMT, errno
}

// loadOrAssign reads the gfid xattr of p, or gives the inode a new gfid
// and index entry when it has none.
func (r *replfs) loadOrAssign(p string, isDir bool, parent func() (gfid.GFID, string, syscall.Errno)) (gfid.GFID, syscall.Errno) {
	var buf [16]byte
	sz, err := unix.Lgetxattr(p, r.brick.GFIDXattr, buf[:])
	if err == nil && sz == 16 {
		return gfid.GFID(buf), 0
	}
	if err != nil && err != unix.ENODATA {
		return gfid.Zero, gofs.ToErrno(err)
	}
	g := gfid.New()
	if errno := r.assign(p, g, isDir, parent); errno != 0 {
		return gfid.Zero, errno
	}
	r.log.Debug("assigned gfid to existing inode", zap.String("path", p), zap.Stringer("gfid", g))
	return g, 0
}

// assign stores g on the inode at p and adds its index entry.
func (r *replfs) assign(p string, g gfid.GFID, isDir bool, parent func() (gfid.GFID, string, syscall.Errno)) syscall.Errno {
	if err := unix.Lsetxattr(p, r.brick.GFIDXattr, g[:], 0); err != nil {
		r.log.Error("set gfid", zap.String("path", p), zap.Error(err))
		return gofs.ToErrno(err)
	}
	var err error
	if isDir {
		pg, name, errno := parent()
		if errno != 0 {
			return errno
		}
		err = r.idx.setDir(g, pg, name)
	} else {
		err = r.idx.addLink(g, p)
	}
	if err != nil {
		r.log.Error("gfid index", zap.String("path", p), zap.Stringer("gfid", g), zap.Error(err))
		return gofs.ToErrno(err)
	}
	return 0
}

// assignFd is assign for a file just created and still open: the xattr
// and the index link go through its descriptor, with no path walk. Linking
// by descriptor needs CAP_DAC_READ_SEARCH; without it, the path is used.
func (r *replfs) assignFd(fd int, path func() string, g gfid.GFID) syscall.Errno {
	if err := unix.Fsetxattr(fd, r.brick.GFIDXattr, g[:], 0); err != nil {
		r.log.Error("set gfid", zap.String("path", path()), zap.Error(err))
		return gofs.ToErrno(err)
	}
	rel := rel(g)
	err := r.idx.withParents(g, func() error { return unix.Linkat(fd, "", r.idx.fd, rel, unix.AT_EMPTY_PATH) })
	if err == unix.EPERM || err == unix.ENOENT {
		err = r.idx.addLink(g, path())
	}
	if err != nil && err != unix.EEXIST {
		r.log.Error("gfid index", zap.String("path", path()), zap.Stringer("gfid", g), zap.Error(err))
		return gofs.ToErrno(err)
	}
	return 0
}

// fixNlink hides the gfid index's extra hard link from callers.
func fixNlink(a *fuse.Attr) {
	if a.Mode&syscall.S_IFMT != syscall.S_IFDIR && a.Nlink > 1 {
		a.Nlink--
	}
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if n.hidden(name) {
		return nil, syscall.ENOENT
	}
	ch, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if errno == 0 {
		fixNlink(&out.Attr)
	}
	return ch, errno
}

func (n *node) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	errno := n.LoopbackNode.Getattr(ctx, f, out)
	if errno == 0 {
		out.Nlink = n.userNlink(out.Mode, out.Nlink)
	}
	return errno
}

// userNlink turns the brick's link count of an inode into the one users
// see. An indexed non-directory (one whose gfid this mount knows) with a
// single link has lost its last name, and its index entry is about to be
// retired: it is shown as deleted, as fstat on an unlinked open file does.
func (n *node) userNlink(mode, nlink uint32) uint32 {
	if mode&syscall.S_IFMT == syscall.S_IFDIR {
		return nlink
	}
	if nlink > 1 {
		return nlink - 1
	}
	if nlink == 1 && n.gfidOK.Load() {
		return 0
	}
	return nlink
}

func (n *node) Statx(ctx context.Context, f gofs.FileHandle, flags uint32, mask uint32, out *fuse.StatxOut) syscall.Errno {
	errno := n.LoopbackNode.Statx(ctx, f, flags, mask, out)
	if errno == 0 {
		out.Nlink = n.userNlink(uint32(out.Mode), out.Nlink)
	}
	return errno
}

// isOwnXattr reports whether name is one of replfs's private xattrs.
func (r *replfs) isOwnXattr(name string) bool {
	return strings.HasPrefix(name, gfid.PrefixTrusted) || strings.HasPrefix(name, gfid.PrefixUser)
}
