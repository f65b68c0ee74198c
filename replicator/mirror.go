package replicator

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/layout"
	"github.com/replfs/replfs/internal/target"
)

const (
	sIFMT  = unix.S_IFMT
	sIFDIR = unix.S_IFDIR
	sIFREG = unix.S_IFREG
	sIFLNK = unix.S_IFLNK

	// TargetFormat is the version of the mirror layout (docs/formats.md).
	TargetFormat = 1
)

// TargetInfo is a mirror's .replfs/target.json.
type TargetInfo struct {
	Format  int       `json:"format"`
	Kind    string    `json:"kind"`
	ID      string    `json:"id"`
	Brick   string    `json:"brick"` // id of the brick it mirrors
	Xattr   string    `json:"xattr"` // "trusted" or "user"
	Created time.Time `json:"created"`
}

// Mirror is a directory target: a brick-shaped tree (same names, gfids in
// xattrs, its own gfid index) on another disk or filesystem.
//
// Everything found in a mirror is untrusted (whoever can write its disk
// may have changed it), so no path in it is resolved by the kernel
// following symlinks: every directory is opened below the mirror root's
// descriptor with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), a
// directory reached through the index must carry the gfid it was looked
// up by, and every change is made with an *at call on the last name,
// never following it (internal/layout).
type Mirror struct {
	path string
	t    tree
	info TargetInfo

	rootMu sync.Mutex
	root   atomic.Pointer[layout.Root]
	dfds   fdCache[gfid.GFID] // directories by gfid
	bfds   fdCache[uint16]    // index buckets by xx/yy

	namesX string // xattr listing a non-directory's parent directories
	stimeX string

	mu   sync.Mutex // guards dirs
	dirs map[gfid.GFID]string

	tmpSeq atomic.Uint64
	made   sync.Map // index xx/yy directories known to exist

	cr          creator
	noCopyRange atomic.Bool // copy_file_range cannot reach this mirror from the brick
	// fresh: the index was empty at Open and only this Mirror has added to
	// it since, so a gfid whose xx/yy directory it has not made is not on
	// the mirror: an initial sync asks for every gfid before making it.
	// Until the first stime is set (the end of the first crawl or batch).
	fresh atomic.Bool

	// dirLocks serialize, per directory (by hash of its gfid), the
	// replacement of names by WriteFile: each saves the directory's times,
	// renames, and puts them back, and two calls interleaved in one
	// directory would put back a time the other's rename made.
	dirLocks [dirLockStripes]sync.Mutex
}

// NewMirror returns a directory mirror target at path (absolute).
func NewMirror(path string) *Mirror {
	m := &Mirror{path: path}
	m.dfds.max, m.bfds.max = 256, 256
	return m
}

func (m *Mirror) Name() string { return m.path }
func (m *Mirror) Kind() string { return "mirror" }

// ID returns the mirror's identity (valid after Open).
func (m *Mirror) ID() string { return m.info.ID }

// rootDir returns the mirror root, opened on first use (after Open's
// checks) and kept: every path below it is resolved from this descriptor.
func (m *Mirror) rootDir() (*layout.Root, error) {
	if r := m.root.Load(); r != nil {
		return r, nil
	}
	m.rootMu.Lock()
	defer m.rootMu.Unlock()
	if r := m.root.Load(); r != nil {
		return r, nil
	}
	r, err := layout.OpenRoot(m.path)
	if err != nil {
		return nil, fmt.Errorf("mirror %w", err)
	}
	m.root.Store(r)
	return r, nil
}

// Close releases the mirror root; a later use opens it again.
func (m *Mirror) Close() error {
	m.rootMu.Lock()
	defer m.rootMu.Unlock()
	m.dfds.dropAll()
	m.bfds.dropAll()
	if r := m.root.Swap(nil); r != nil {
		return r.Close()
	}
	return nil
}

// openRel opens directory rel below the root.
func (m *Mirror) openRel(rel string) (int, error) {
	r, err := m.rootDir()
	if err != nil {
		return -1, err
	}
	return r.OpenDir(rel)
}

// bucket opens the index directory of g, making it when make is set.
func (m *Mirror) bucket(g gfid.GFID, make bool) (*cachedFD, string, error) {
	key := bucketKey(g)
	if d, ok := m.bfds.get(key); ok {
		return d, g.String(), nil
	}
	r, err := m.rootDir()
	if err != nil {
		return nil, "", err
	}
	var fd int
	var name string
	if !make {
		fd, name, err = r.Bucket(g)
	} else {
		fd, name, err = r.MakeBucket(g)
		if err == nil {
			m.made.Store(key, true)
		}
	}
	if err != nil {
		return nil, "", err
	}
	return m.bfds.add(key, fd), name, nil
}

// bucketKey names g's xx/yy index directory.
func bucketKey(g gfid.GFID) uint16 { return uint16(g[0])<<8 | uint16(g[1]) }

// pointer reads directory g's index pointer: its parent and name. A
// missing entry, or one that is not a pointer replfs wrote (a user's
// symlink is indexed by a hard link to it), is fs.ErrNotExist: g is not a
// directory of this mirror.
func (m *Mirror) pointer(g gfid.GFID) (gfid.GFID, string, error) {
	bk, name, err := m.bucket(g, false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return gfid.Zero, "", errNoEntry
		}
		return gfid.Zero, "", err
	}
	defer bk.put()
	parent, dir, isRoot, err := layout.ReadPointer(bk.fd, name)
	switch {
	case err == unix.ENOENT || errors.Is(err, layout.ErrNotPointer):
		return gfid.Zero, "", fmt.Errorf("mirror %s: %s is not a directory: %w", m.path, g, fs.ErrNotExist)
	case err != nil:
		return gfid.Zero, "", &fs.PathError{Op: "readlink", Path: m.path + "/" + g.IndexPath(), Err: err}
	case isRoot:
		return gfid.Zero, "", fmt.Errorf("mirror %s: index: %s points at the root: %w", m.path, g, fs.ErrNotExist)
	}
	return parent, dir, nil
}

// Where returns directory g's parent and name.
func (m *Mirror) doWhere(ctx context.Context, g gfid.GFID) (gfid.GFID, string, error) {
	return m.pointer(g)
}

// dirRel returns the root-relative path of directory g: cached, or built
// from the chain of index pointers (no kernel symlink-depth limit). The
// path is only a guess until openDir checks the gfid at its end.
func (m *Mirror) dirRel(g gfid.GFID, depth int) (string, error) {
	switch g {
	case gfid.Root:
		return ".", nil
	case limbo:
		return limboDir, nil
	case tmpG:
		return tmpDir, nil
	}
	if p, ok := m.cachedDir(g); ok {
		return p, nil
	}
	if depth > 4096 {
		return "", fmt.Errorf("mirror %s: gfid index: pointer loop at %s", m.path, g)
	}
	parent, name, err := m.pointer(g)
	if err != nil {
		return "", err
	}
	pp, err := m.dirRel(parent, depth+1)
	if err != nil {
		return "", err
	}
	p := layout.Join(pp, name)
	m.rememberDir(g, p)
	return p, nil
}

// openDir opens directory g and checks that what it opened is g. A cached
// path that leads elsewhere (a rename) is dropped and g resolved again
// from the index; a directory that still is not g is errNoEntry.
func (m *Mirror) openDir(g gfid.GFID) (*cachedFD, error) {
	if d, ok := m.dfds.get(g); ok {
		return d, nil
	}
	for try := 0; ; try++ {
		rel, err := m.dirRel(g, 0)
		if err != nil {
			return nil, err
		}
		fd, err := m.openRel(rel)
		if err == nil {
			if g == gfid.Root || g == limbo || g == tmpG {
				return m.dfds.add(g, fd), nil
			}
			got, gerr := layout.GFIDOf(fd, "", m.t.gfidX)
			if gerr == nil && got == g {
				return m.dfds.add(g, fd), nil
			}
			unix.Close(fd)
			err = gerr
		}
		m.forgetDirs()
		if try > 0 {
			if err == nil || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				return nil, errNoEntry
			}
			return nil, err
		}
	}
}

func (m *Mirror) cachedDir(g gfid.GFID) (string, bool) {
	m.mu.Lock()
	p, ok := m.dirs[g]
	m.mu.Unlock()
	return p, ok
}

// rememberDir caches the root-relative path of directory g.
func (m *Mirror) rememberDir(g gfid.GFID, p string) {
	m.mu.Lock()
	if m.dirs == nil || len(m.dirs) > 1<<16 {
		m.dirs = make(map[gfid.GFID]string)
	}
	m.dirs[g] = p
	m.mu.Unlock()
}

func (m *Mirror) forgetDirs() {
	m.mu.Lock()
	clear(m.dirs)
	m.mu.Unlock()
}

// abs names dir/name for messages.
func (m *Mirror) abs(dirRel, name string) string {
	return m.path + "/" + layout.Join(dirRel, name)
}

// childName checks a name the caller wants made, moved or removed in
// directory parent.
func (m *Mirror) childName(parent gfid.GFID, name string) error {
	if err := layout.ValidName(name); err != nil || parent == gfid.Root && name == gfid.StateDir {
		return fmt.Errorf("mirror %s: invalid name %q", m.path, name)
	}
	return nil
}

// openParent opens directory parent for an operation on its entry name.
func (m *Mirror) openParent(parent gfid.GFID, name string) (*cachedFD, error) {
	if err := m.childName(parent, name); err != nil {
		return nil, err
	}
	return m.openDir(parent)
}

func (m *Mirror) doLookup(ctx context.Context, parent gfid.GFID, name string) (gfid.GFID, target.Attr, bool, error) {
	d, err := m.openParent(parent, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return gfid.Zero, target.Attr{}, false, nil
		}
		return gfid.Zero, target.Attr{}, false, err
	}
	defer d.put()
	var st unix.Stat_t
	if err := layout.Lstat(d.fd, name, &st); err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR {
			return gfid.Zero, target.Attr{}, false, nil
		}
		return gfid.Zero, target.Attr{}, false, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	g, err := layout.GFIDOf(d.fd, name, m.t.gfidX)
	a := target.AttrOf(&st)
	if a.Type() != sIFDIR && a.Nlink > 0 && g != gfid.Zero {
		a.Nlink-- // the index link
	}
	return g, a, true, err
}

// inode is one inode of the mirror, addressed for *at calls: name in
// directory fd, or fd itself when name is "" (a directory).
type inode struct {
	ref  *cachedFD
	fd   int
	name string
	st   unix.Stat_t
}

func (n inode) close() { n.ref.put() }

// open finds inode g: a directory by its path (gfid-checked), anything
// else through its index entry, which is a hard link to it. An index
// entry whose inode has no other name is a file on its way out: missing.
func (m *Mirror) open(g gfid.GFID) (inode, error) {
	if g == gfid.Root || g == limbo {
		return m.openDirInode(g)
	}
	bk, name, err := m.bucket(g, false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return inode{}, errNoEntry
		}
		return inode{}, err
	}
	n := inode{ref: bk, fd: bk.fd, name: name}
	if err := layout.Lstat(bk.fd, name, &n.st); err != nil {
		bk.put()
		if err == unix.ENOENT {
			return inode{}, errNoEntry
		}
		return inode{}, &fs.PathError{Op: "lstat", Path: m.path + "/" + g.IndexPath(), Err: err}
	}
	// A directory's pointer is a symlink with one link; a user's symlink
	// is indexed by a hard link (two or more).
	if n.st.Mode&sIFMT != sIFLNK || n.st.Nlink > 1 {
		if n.st.Nlink <= 1 {
			bk.put()
			return inode{}, errNoEntry
		}
		return n, nil
	}
	bk.put()
	return m.openDirInode(g)
}

func (m *Mirror) openDirInode(g gfid.GFID) (inode, error) {
	d, err := m.openDir(g)
	if err != nil {
		return inode{}, err
	}
	n := inode{ref: d, fd: d.fd}
	if err := unix.Fstat(d.fd, &n.st); err != nil {
		d.put()
		return inode{}, err
	}
	return n, nil
}

func (m *Mirror) doStat(ctx context.Context, g gfid.GFID) (target.Attr, error) {
	if m.fresh.Load() && g != gfid.Root {
		if _, ok := m.made.Load(bucketKey(g)); !ok {
			return target.Attr{}, errNoEntry
		}
	}
	n, err := m.open(g)
	if err != nil {
		return target.Attr{}, err
	}
	n.close()
	a := target.AttrOf(&n.st)
	if a.Type() != sIFDIR {
		a.Nlink--
	}
	return a, nil
}

func (m *Mirror) doReadDir(ctx context.Context, dir gfid.GFID) ([]target.DirEntry, error) {
	dd, err := m.openDir(dir)
	if err != nil {
		return nil, err
	}
	defer dd.put()
	fd, err := dd.reopen()
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return readDirFD(&m.t, fd, m.path, dir == gfid.Root)
}

func (m *Mirror) doXattrs(ctx context.Context, g gfid.GFID) (target.Xattrs, error) {
	n, err := m.open(g)
	if err != nil {
		return nil, err
	}
	defer n.close()
	return xattrsAt(n.fd, n.name)
}

func (m *Mirror) doSetMeta(ctx context.Context, g gfid.GFID, a target.Attr, x target.Xattrs, what target.Meta) error {
	n, err := m.open(g)
	if err != nil {
		return err
	}
	defer n.close()
	if n.st.Mode&sIFMT != a.Type() {
		return fmt.Errorf("mirror %s: %s is not of the type to set: %w", m.path, g, fs.ErrNotExist)
	}
	return m.setMetaAt(n.fd, n.name, a, x, what)
}

// setMetaAt sets what of a and x on dfd/name (dfd itself when name is "").
func (m *Mirror) setMetaAt(dfd int, name string, a target.Attr, x target.Xattrs, what target.Meta) error {
	p := func() string { return m.path + "/…/" + name } // for errors only
	if what&target.MetaOwner != 0 {
		if err := layout.Chown(dfd, name, a.UID, a.GID); err != nil {
			return &fs.PathError{Op: "chown", Path: p(), Err: err}
		}
	}
	if what&target.MetaMode != 0 && a.Type() != sIFLNK {
		if err := layout.Chmod(dfd, name, a.Mode&0o7777); err != nil {
			return &fs.PathError{Op: "chmod", Path: p(), Err: err}
		}
	}
	if what&target.MetaXattrs != 0 {
		if err := applyXattrsAt(dfd, name, x); err != nil {
			return fmt.Errorf("xattrs of %s: %w", p(), err)
		}
	}
	if what&target.MetaTimes != 0 {
		if err := layout.Utimes(dfd, name, a.Atime, a.Mtime); err != nil {
			return &fs.PathError{Op: "utimes", Path: p(), Err: err}
		}
	}
	return nil
}

// setDirPointer makes directory g's index entry point at parent/name.
func (m *Mirror) setDirPointer(g, parent gfid.GFID, name string) error {
	target := gfid.DirPointer(parent, name)
	if g == gfid.Root {
		target = gfid.RootPointer
	}
	bk, ename, err := m.bucket(g, true)
	if err != nil {
		return err
	}
	defer bk.put()
	// A new directory has no pointer yet: one symlink makes it.
	err = unix.Symlinkat(target, bk.fd, ename)
	if err == nil {
		return nil
	}
	if err != unix.EEXIST {
		return &fs.PathError{Op: "symlink", Path: m.path + "/" + g.IndexPath(), Err: err}
	}
	if old, err := layout.Readlink(bk.fd, ename); err == nil && old == target {
		return nil
	}
	tmp := ename + ".new"
	unix.Unlinkat(bk.fd, tmp, 0)
	if err := unix.Symlinkat(target, bk.fd, tmp); err != nil {
		return &fs.PathError{Op: "symlink", Path: m.path + "/" + g.IndexPath() + ".new", Err: err}
	}
	return unix.Renameat(bk.fd, tmp, bk.fd, ename)
}

// dropIndex removes g's index entry.
func (m *Mirror) dropIndex(g gfid.GFID) error {
	bk, name, err := m.bucket(g, false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer bk.put()
	if err := unix.Unlinkat(bk.fd, name, 0); err != nil && err != unix.ENOENT {
		return &fs.PathError{Op: "unlink", Path: m.path + "/" + g.IndexPath(), Err: err}
	}
	return nil
}

// Make creates parent/name as inode g, indexed, with a's owner and mode
// and the xattrs x.
func (m *Mirror) doMake(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID, a target.Attr, link string, x target.Xattrs) error {
	d, err := m.openParent(parent, name)
	if err != nil {
		return err
	}
	defer d.put()
	switch a.Type() {
	case sIFDIR:
		err = unix.Mkdirat(d.fd, name, 0o700)
	case sIFREG:
		var fd int
		fd, err = unix.Openat(d.fd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			unix.Close(fd)
		}
	case sIFLNK:
		err = unix.Symlinkat(link, d.fd, name)
	default:
		err = unix.Mknodat(d.fd, name, a.Type()|0o600, int(a.Rdev))
	}
	if err != nil {
		if err == unix.EEXIST {
			return fs.ErrExist
		}
		return &fs.PathError{Op: "make", Path: name, Err: err}
	}
	if err := layout.Setxattr(d.fd, name, m.t.gfidX, g[:], 0); err != nil {
		return &fs.PathError{Op: "setxattr gfid", Path: name, Err: err}
	}
	if a.Type() == sIFDIR {
		if err = m.setDirPointer(g, parent, name); err == nil {
			if rel, rerr := m.dirRel(parent, 0); rerr == nil {
				m.rememberDir(g, layout.Join(rel, name))
			}
		}
	} else {
		if err = m.setNamesAt(d.fd, name, []nameRef{{parent, name}}); err == nil {
			err = m.linkIndex(g, d.fd, name)
		}
	}
	if err != nil {
		return fmt.Errorf("mirror %s: index %s: %w", m.path, name, err)
	}
	return m.setMetaAt(d.fd, name, a, x, target.MetaOwner|target.MetaMode|target.MetaXattrs)
}

// linkIndex makes the index entry of non-directory g a hard link to
// dfd/name, replacing an older one.
func (m *Mirror) linkIndex(g gfid.GFID, dfd int, name string) error {
	bk, ename, err := m.bucket(g, true)
	if err != nil {
		return err
	}
	defer bk.put()
	err = unix.Linkat(dfd, name, bk.fd, ename, 0)
	if err != unix.EEXIST {
		return err
	}
	var have, want unix.Stat_t
	if layout.Lstat(bk.fd, ename, &have) == nil && layout.Lstat(dfd, name, &want) == nil &&
		have.Ino == want.Ino && have.Dev == want.Dev {
		return nil // indexed already (a rename of a link over itself would do nothing)
	}
	tmp := ename + ".new"
	unix.Unlinkat(bk.fd, tmp, 0)
	if err := unix.Linkat(dfd, name, bk.fd, tmp, 0); err != nil {
		return err
	}
	return unix.Renameat(bk.fd, tmp, bk.fd, ename)
}

func (m *Mirror) doLink(ctx context.Context, g, parent gfid.GFID, name string) error {
	d, err := m.openParent(parent, name)
	if err != nil {
		return err
	}
	defer d.put()
	bk, ename, err := m.bucket(g, false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errNoEntry
		}
		return err
	}
	defer bk.put()
	var st unix.Stat_t
	if err := layout.Lstat(bk.fd, ename, &st); err != nil || st.Mode&sIFMT == sIFDIR ||
		st.Mode&sIFMT == sIFLNK && st.Nlink == 1 {
		return errNoEntry // no such non-directory (a pointer is not linked)
	}
	if err := unix.Linkat(bk.fd, ename, d.fd, name, 0); err != nil {
		if err == unix.EEXIST {
			return fs.ErrExist
		}
		if err == unix.ENOENT {
			return errNoEntry
		}
		return &fs.PathError{Op: "link", Path: name, Err: err}
	}
	return m.editNames(bk.fd, ename, nil, &nameRef{parent, name})
}

// holds checks that parent/name holds g and returns the parent open.
func (m *Mirror) holds(parent gfid.GFID, name string, g gfid.GFID) (*cachedFD, unix.Stat_t, error) {
	var st unix.Stat_t
	d, err := m.openParent(parent, name)
	if err != nil {
		return nil, st, err
	}
	if err := layout.Lstat(d.fd, name, &st); err != nil {
		d.put()
		return nil, st, errNoEntry
	}
	if got, _ := layout.GFIDOf(d.fd, name, m.t.gfidX); got != g {
		d.put()
		return nil, st, fmt.Errorf("%s holds %s, not %s: %w", name, got, g, fs.ErrExist)
	}
	return d, st, nil
}

func (m *Mirror) doUnlink(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error {
	hd, st, err := m.holds(parent, name, g)
	if err != nil {
		return err
	}
	defer hd.put()
	if st.Mode&sIFMT == sIFDIR {
		return fmt.Errorf("mirror %s: unlink %s: %w", m.path, name, unix.EISDIR)
	}
	if err := unix.Unlinkat(hd.fd, name, 0); err != nil {
		return &fs.PathError{Op: "unlink", Path: name, Err: err}
	}
	if g == gfid.Zero {
		return nil
	}
	if st.Nlink <= 2 {
		return m.dropIndex(g)
	}
	bk, ename, err := m.bucket(g, false)
	if err != nil {
		return err
	}
	defer bk.put()
	return m.editNames(bk.fd, ename, &nameRef{parent, name}, nil)
}

func (m *Mirror) doRmdir(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error {
	hd, _, err := m.holds(parent, name, g)
	if err != nil {
		return err
	}
	defer hd.put()
	if err := unix.Unlinkat(hd.fd, name, unix.AT_REMOVEDIR); err != nil {
		return &fs.PathError{Op: "rmdir", Path: name, Err: err}
	}
	m.forgetDirs()
	m.dfds.drop(g)
	if g != gfid.Zero {
		return m.dropIndex(g)
	}
	return nil
}

// Rename moves oldParent/oldName, holding g, to the free name
// newParent/newName (limbo included).
func (m *Mirror) doRename(ctx context.Context, g, oldParent gfid.GFID, oldName string, newParent gfid.GFID, newName string) error {
	od, st, err := m.holds(oldParent, oldName, g)
	if err != nil {
		return err
	}
	defer od.put()
	nd, err := m.openParent(newParent, newName)
	if err != nil {
		return err
	}
	defer nd.put()
	if err := unix.Renameat2(od.fd, oldName, nd.fd, newName, unix.RENAME_NOREPLACE); err != nil {
		if err == unix.EEXIST {
			return fs.ErrExist
		}
		return &fs.PathError{Op: "rename", Path: oldName, Err: err}
	}
	if st.Mode&sIFMT == sIFDIR {
		m.forgetDirs()
		return m.setDirPointer(g, newParent, newName)
	}
	if g == gfid.Zero {
		return nil
	}
	bk, ename, err := m.bucket(g, false)
	if err != nil {
		return err
	}
	defer bk.put()
	drop, add := nameRef{oldParent, oldName}, nameRef{newParent, newName}
	if newParent == limbo {
		return m.editNames(bk.fd, ename, &drop, nil)
	}
	return m.editNames(bk.fd, ename, &drop, &add)
}

func (m *Mirror) doAside(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error {
	return m.Rename(ctx, g, parent, name, limbo, g.String())
}

func (m *Mirror) doAdopt(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error {
	hd, st, err := m.holds(parent, name, g)
	if err != nil {
		return err
	}
	defer hd.put()
	if st.Mode&sIFMT == sIFDIR {
		return m.setDirPointer(g, parent, name)
	}
	if err := m.setNamesAt(hd.fd, name, []nameRef{{parent, name}}); err != nil {
		return err
	}
	return m.linkIndex(g, hd.fd, name)
}

func (m *Mirror) doEmptyLimbo(ctx context.Context) (int, error) {
	fd, err := m.openRel(limboDir)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	names, err := readNamesFD(fd, m.path+"/"+limboDir)
	if err != nil {
		return 0, err
	}
	for _, e := range names {
		if err := m.removeTree(fd, e.name); err != nil {
			return 0, err
		}
	}
	return len(names), nil
}

// removeTree removes dfd/name and everything under it, with their index
// entries, never following a symlink (a subdirectory is opened
// O_NOFOLLOW relative to its parent's descriptor).
func (m *Mirror) removeTree(dfd int, name string) error {
	var st unix.Stat_t
	if err := layout.Lstat(dfd, name, &st); err != nil {
		return nil
	}
	g, _ := layout.GFIDOf(dfd, name, m.t.gfidX)
	if st.Mode&sIFMT == sIFDIR {
		sub, err := layout.OpenBeneath(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return &fs.PathError{Op: "open", Path: name, Err: err}
		}
		names, err := readNamesFD(sub, name)
		for _, e := range names {
			if err == nil {
				err = m.removeTree(sub, e.name)
			}
		}
		unix.Close(sub)
		if err != nil {
			return err
		}
		if err := unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR); err != nil {
			return &fs.PathError{Op: "rmdir", Path: name, Err: err}
		}
		m.forgetDirs()
		m.dfds.drop(g)
	} else if err := unix.Unlinkat(dfd, name, 0); err != nil {
		return &fs.PathError{Op: "unlink", Path: name, Err: err}
	}
	if g != gfid.Zero && g != gfid.Root && (st.Mode&sIFMT == sIFDIR || st.Nlink <= 2) {
		m.dropIndex(g)
	}
	return nil
}

// RemoveAll removes parent/name (holding g) and its whole subtree.
func (m *Mirror) doRemoveAll(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error {
	hd, _, err := m.holds(parent, name, g)
	if err != nil {
		return err
	}
	defer hd.put()
	return m.removeTree(hd.fd, name)
}

// Sync makes everything applied so far durable (a crawl also calls it
// while it copies, to write back as it goes: the descriptor cache stays).
func (m *Mirror) doSync(ctx context.Context) error {
	r, err := m.rootDir()
	if err != nil {
		return err
	}
	return unix.Syncfs(r.FD())
}

func (m *Mirror) doSetStime(ctx context.Context, t time.Time) error {
	// The batch (or crawl) is committed: no descriptor it resolved is kept
	// past it.
	m.dfds.dropAll()
	m.bfds.dropAll()
	m.fresh.Store(false)
	r, err := m.rootDir()
	if err != nil {
		return err
	}
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.Unix()))
	binary.BigEndian.PutUint32(b[8:], uint32(t.Nanosecond()))
	return unix.Fsetxattr(r.FD(), m.stimeX, b[:], 0)
}

// setRootGFID gives the mirror root its gfid (Open).
func (m *Mirror) setRootGFID() error {
	r, err := m.rootDir()
	if err != nil {
		return err
	}
	if err := unix.Fsetxattr(r.FD(), m.t.gfidX, gfid.Root[:], 0); err != nil {
		return &fs.PathError{Op: "setxattr gfid", Path: m.path, Err: err}
	}
	return nil
}

func (m *Mirror) state() string { return m.path + "/" + gfid.StateDir }
