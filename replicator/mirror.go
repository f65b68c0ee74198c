package replicator

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
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
type Mirror struct {
	path string
	t    tree
	info TargetInfo

	namesX string // xattr listing a non-directory's names
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

	// dirLocks serialize, per directory (by hash of its path), the
	// replacement of names by WriteFile: each saves the directory's times,
	// renames, and puts them back, and two calls interleaved in one
	// directory would put back a time the other's rename made.
	dirLocks [dirLockStripes]sync.Mutex
}

// NewMirror returns a directory mirror target at path (absolute).
func NewMirror(path string) *Mirror { return &Mirror{path: path} }

func (m *Mirror) Name() string { return m.path }
func (m *Mirror) Kind() string { return "mirror" }

// ID returns the mirror's identity (valid after Open).
func (m *Mirror) ID() string { return m.info.ID }

func (m *Mirror) state() string { return filepath.Join(m.path, gfid.StateDir) }

func (m *Mirror) Close() error { return nil }

// dirPath resolves directory g through a cache that dir renames and
// removals clear. A directory missing from it costs one index read: its
// parent's path comes from the cache too (a walk from the root, as verify
// and a crawl make, finds every parent there).
func (m *Mirror) dirPath(g gfid.GFID) (string, error) {
	return m.dirPathDepth(g, 0)
}

func (m *Mirror) dirPathDepth(g gfid.GFID, depth int) (string, error) {
	m.mu.Lock()
	p, ok := m.dirs[g]
	m.mu.Unlock()
	if ok {
		return p, nil
	}
	var err error
	if g == gfid.Root || g == limbo {
		p, err = m.t.dirPath(g)
	} else {
		if depth > 4096 {
			return "", fmt.Errorf("%s: gfid index: pointer loop at %s", m.path, g)
		}
		var parent gfid.GFID
		var name string
		if parent, name, err = m.t.dirParent(g); err == nil {
			if p, err = m.dirPathDepth(parent, depth+1); err == nil {
				p += "/" + name
			}
		}
	}
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	if len(m.dirs) > 1<<16 {
		clear(m.dirs)
	}
	m.dirs[g] = p
	m.mu.Unlock()
	return p, nil
}

func (m *Mirror) cachedDir(g gfid.GFID) (string, bool) {
	m.mu.Lock()
	p, ok := m.dirs[g]
	m.mu.Unlock()
	return p, ok
}

// rememberDir caches the path of a directory this mirror just made.
func (m *Mirror) rememberDir(g gfid.GFID, p string) {
	m.mu.Lock()
	if len(m.dirs) > 1<<16 {
		clear(m.dirs)
	}
	m.dirs[g] = p
	m.mu.Unlock()
}

func (m *Mirror) forgetDirs() {
	m.mu.Lock()
	clear(m.dirs)
	m.mu.Unlock()
}

func attrOf(st *unix.Stat_t) Attr {
	return Attr{Mode: st.Mode, UID: st.Uid, GID: st.Gid, Rdev: st.Rdev, Size: st.Size,
		Atime: st.Atim.Nano(), Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(), Ino: st.Ino, Nlink: uint32(st.Nlink)}
}

func (m *Mirror) Lookup(parent gfid.GFID, name string) (gfid.GFID, Attr, bool, error) {
	dp, err := m.dirPath(parent)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return gfid.Zero, Attr{}, false, nil
		}
		return gfid.Zero, Attr{}, false, err
	}
	var st unix.Stat_t
	p := dp + "/" + name
	if err := unix.Lstat(p, &st); err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR {
			return gfid.Zero, Attr{}, false, nil
		}
		return gfid.Zero, Attr{}, false, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	g, err := m.t.gfidAt(p)
	a := attrOf(&st)
	if a.Type() != sIFDIR && a.Nlink > 0 && g != gfid.Zero {
		a.Nlink-- // the index link
	}
	return g, a, true, err
}

func (m *Mirror) Stat(g gfid.GFID) (Attr, error) {
	if m.fresh.Load() && g != gfid.Root {
		if _, ok := m.made.Load(bucket(g)); !ok {
			return Attr{}, errNoEntry
		}
	}
	if p, ok := m.cachedDir(g); ok {
		// A directory this mirror resolved before: no pointer chain.
		var st unix.Stat_t
		if unix.Lstat(p, &st) == nil && st.Mode&sIFMT == sIFDIR {
			if got, _ := m.t.gfidAt(p); got == g {
				return attrOf(&st), nil
			}
		}
	}
	_, st, err := m.t.statGFID(g)
	if err != nil {
		return Attr{}, err
	}
	a := attrOf(&st)
	if a.Type() != sIFDIR {
		a.Nlink--
	}
	return a, nil
}

// path returns a path that reaches g: its directory path, or its index link.
func (m *Mirror) pathOf(g gfid.GFID) (string, Attr, error) {
	if p, err := m.dirPath(g); err == nil && g != limbo {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err == nil && st.Mode&sIFMT == sIFDIR {
			return p, attrOf(&st), nil
		}
		m.forgetDirs()
	}
	p, st, err := m.t.statGFID(g)
	if err != nil {
		return "", Attr{}, err
	}
	return p, attrOf(&st), nil
}

func (m *Mirror) ReadDir(dir gfid.GFID) ([]DirEntry, error) {
	dp, err := m.dirPath(dir)
	if err != nil {
		return nil, err
	}
	return readDir(&m.t, dp, dir == gfid.Root)
}

func (m *Mirror) Where(g gfid.GFID) (gfid.GFID, string, error) { return m.t.dirParent(g) }

func (m *Mirror) Xattrs(g gfid.GFID) (Xattrs, error) {
	p, _, err := m.pathOf(g)
	if err != nil {
		return nil, err
	}
	return readXattrs(p)
}

// ownXattr reports replfs's own xattrs, never copied as user data.
func ownXattr(name string) bool {
	return strings.HasPrefix(name, gfid.PrefixTrusted) || strings.HasPrefix(name, gfid.PrefixUser)
}

// applyXattrs makes p's xattrs (replfs's own aside) equal to want.
func applyXattrs(p string, want Xattrs) error {
	have, err := readXattrs(p)
	if err != nil {
		return err
	}
	for n := range have {
		if _, ok := want[n]; !ok {
			if err := xattr.LRemove(p, n); err != nil && !errors.Is(err, unix.ENODATA) {
				return err
			}
		}
	}
	for n, v := range want {
		if old, ok := have[n]; ok && bytes.Equal(old, v) {
			continue
		}
		if err := xattr.LSet(p, n, v); err != nil {
			return err
		}
	}
	return nil
}

func (m *Mirror) setGFID(p string, g gfid.GFID) error {
	if err := unix.Lsetxattr(p, m.t.gfidX, g[:], 0); err != nil {
		return &fs.PathError{Op: "setxattr gfid", Path: p, Err: err}
	}
	return nil
}

// bucket names g's xx/yy index directory.
func bucket(g gfid.GFID) uint16 { return uint16(g[0])<<8 | uint16(g[1]) }

func (m *Mirror) indexParents(g gfid.GFID) error {
	key := bucket(g)
	if _, ok := m.made.Load(key); ok {
		return nil
	}
	s := g.String()
	xx := filepath.Join(m.path, gfid.IndexDir, s[0:2])
	err := unix.Mkdir(xx+"/"+s[2:4], 0o700)
	if err == unix.ENOENT {
		if err = unix.Mkdir(xx, 0o700); err == nil || err == unix.EEXIST {
			err = unix.Mkdir(xx+"/"+s[2:4], 0o700)
		}
	}
	if err != nil && err != unix.EEXIST {
		return &fs.PathError{Op: "mkdir", Path: xx, Err: err}
	}
	m.made.Store(key, true)
	return nil
}

func (m *Mirror) setDirPointer(g, parent gfid.GFID, name string) error {
	target := gfid.DirPointer(parent, name)
	if g == gfid.Root {
		target = gfid.RootPointer
	}
	ip := m.t.indexPath(g)
	if err := m.indexParents(g); err != nil {
		return err
	}
	// A new directory has no pointer yet: one symlink makes it.
	err := unix.Symlink(target, ip)
	if err == nil {
		return nil
	}
	if err != unix.EEXIST {
		return &fs.PathError{Op: "symlink", Path: ip, Err: err}
	}
	if old, err := os.Readlink(ip); err == nil && old == target {
		return nil
	}
	tmp := ip + ".new"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, ip)
}

// linkIndex makes the index entry of non-directory g a hard link to p,
// replacing an older one.
func (m *Mirror) linkIndex(g gfid.GFID, p string) error {
	if err := m.indexParents(g); err != nil {
		return err
	}
	ip := m.t.indexPath(g)
	err := unix.Linkat(unix.AT_FDCWD, p, unix.AT_FDCWD, ip, 0)
	if err != unix.EEXIST {
		return err
	}
	tmp := ip + ".new"
	os.Remove(tmp)
	if err := unix.Linkat(unix.AT_FDCWD, p, unix.AT_FDCWD, tmp, 0); err != nil {
		return err
	}
	return os.Rename(tmp, ip)
}

// Names of a non-directory. The xattr pgfid lists the gfids of the
// directories holding its names (GlusterFS keeps the same on its bricks):
// 16 bytes a parent, so that with the gfid it still fits in the inode on
// ext4 (no extra block per file). The names themselves are found by
// scanning those directories for the inode, which only a content update
// of an existing file needs.
type nameRef struct {
	parent gfid.GFID
	name   string
}

func encodeNames(refs []nameRef) []byte {
	var b []byte
	for i, r := range refs {
		dup := false
		for _, q := range refs[:i] {
			dup = dup || q.parent == r.parent
		}
		if !dup {
			b = append(b, r.parent[:]...)
		}
	}
	return b
}

func (m *Mirror) Parents(g gfid.GFID) ([]gfid.GFID, error) {
	v, err := xattr.LGet(m.t.indexPath(g), m.namesX)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, xattr.ENOATTR) {
			return nil, nil
		}
		return nil, err
	}
	ps := decodeParents(v)
	return slices.DeleteFunc(ps, func(p gfid.GFID) bool { return p == limbo }), nil
}

func decodeParents(b []byte) []gfid.GFID {
	var out []gfid.GFID
	for ; len(b) >= 16; b = b[16:] {
		out = append(out, gfid.GFID(b[:16]))
	}
	return out
}

// getNames returns the names of the inode at p (not following a symlink).
func (m *Mirror) getNames(p string) []nameRef {
	v, err := xattr.LGet(p, m.namesX)
	if err != nil {
		return nil
	}
	var st unix.Stat_t
	if unix.Lstat(p, &st) != nil {
		return nil
	}
	var refs []nameRef
	for _, parent := range decodeParents(v) {
		dp, err := m.dirPath(parent)
		if err != nil {
			continue
		}
		for _, n := range namesOfInode(dp, st.Ino) {
			refs = append(refs, nameRef{parent, n})
		}
	}
	return refs
}

// namesOfInode lists the entries of directory dp that are inode ino.
func namesOfInode(dp string, ino uint64) []string {
	ents, _ := readNames(dp)
	var out []string
	for _, e := range ents {
		if e.ino == ino {
			out = append(out, e.name)
		}
	}
	return out
}

func (m *Mirror) setNames(p string, refs []nameRef) error {
	if len(refs) == 0 {
		err := xattr.LRemove(p, m.namesX)
		if err != nil && errors.Is(err, unix.ENODATA) {
			return nil
		}
		return err
	}
	return xattr.LSet(p, m.namesX, encodeNames(refs))
}

// editNames records that the inode at p lost the name drop and/or gained
// the name add. A parent is dropped from the list only when the inode has
// no name left there (or a single name in all).
func (m *Mirror) editNames(p string, drop, add *nameRef) error {
	v, _ := xattr.LGet(p, m.namesX)
	parents := decodeParents(v)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err
	}
	var refs []nameRef
	for _, q := range parents {
		if drop != nil && q == drop.parent {
			if st.Nlink <= 2 && add != nil {
				continue // its only name moves
			}
			if dp, err := m.dirPath(q); err != nil || len(namesOfInode(dp, st.Ino)) == 0 {
				continue
			}
		}
		refs = append(refs, nameRef{parent: q})
	}
	if add != nil {
		refs = append(refs, *add)
	}
	return m.setNames(p, refs)
}

func (m *Mirror) child(parent gfid.GFID, name string) (string, error) {
	if name == "" || strings.ContainsRune(name, '/') || name == "." || name == ".." ||
		parent == gfid.Root && name == gfid.StateDir {
		return "", fmt.Errorf("mirror %s: invalid name %q", m.path, name)
	}
	dp, err := m.dirPath(parent)
	if err != nil {
		return "", err
	}
	return dp + "/" + name, nil
}

func (m *Mirror) Make(parent gfid.GFID, name string, g gfid.GFID, a Attr, link string, x Xattrs) error {
	p, err := m.child(parent, name)
	if err != nil {
		return err
	}
	perm := a.Mode & 0o7777
	switch a.Type() {
	case sIFDIR:
		err = unix.Mkdir(p, 0o700)
	case sIFREG:
		var fd int
		fd, err = unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
		if err == nil {
			unix.Close(fd)
		}
	case sIFLNK:
		err = unix.Symlink(link, p)
	default:
		err = unix.Mknod(p, a.Type()|0o600, int(a.Rdev))
	}
	if err != nil {
		if err == unix.EEXIST {
			return fs.ErrExist
		}
		return &fs.PathError{Op: "make", Path: p, Err: err}
	}
	if err := m.setGFID(p, g); err != nil {
		return err
	}
	if a.Type() == sIFDIR {
		if err = m.setDirPointer(g, parent, name); err == nil {
			m.rememberDir(g, p)
		}
	} else {
		if err = m.setNames(p, []nameRef{{parent, name}}); err == nil {
			err = m.linkIndex(g, p)
		}
	}
	if err != nil {
		return fmt.Errorf("mirror %s: index %s: %w", m.path, p, err)
	}
	_ = perm
	return m.setMetaPath(p, a, x, MetaOwner|MetaMode|MetaXattrs)
}

func (m *Mirror) SetMeta(g gfid.GFID, a Attr, x Xattrs, what Meta) error {
	p, _, err := m.pathOf(g)
	if err != nil {
		return err
	}
	return m.setMetaPath(p, a, x, what)
}

func (m *Mirror) setMetaPath(p string, a Attr, x Xattrs, what Meta) error {
	isLink := a.Type() == sIFLNK
	if what&MetaOwner != 0 {
		if err := unix.Lchown(p, int(a.UID), int(a.GID)); err != nil {
			return &fs.PathError{Op: "chown", Path: p, Err: err}
		}
	}
	if what&MetaMode != 0 && !isLink {
		if err := unix.Chmod(p, a.Mode&0o7777); err != nil {
			return &fs.PathError{Op: "chmod", Path: p, Err: err}
		}
	}
	if what&MetaXattrs != 0 {
		if err := applyXattrs(p, x); err != nil {
			return fmt.Errorf("xattrs of %s: %w", p, err)
		}
	}
	if what&MetaTimes != 0 {
		ts := []unix.Timespec{unix.NsecToTimespec(a.Atime), unix.NsecToTimespec(a.Mtime)}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &fs.PathError{Op: "utimes", Path: p, Err: err}
		}
	}
	return nil
}

// tmpFile makes a new regular file in .replfs/tmp with src's content, g's
// gfid, the names refs and a's attributes.
func (m *Mirror) tmpFile(g gfid.GFID, src *os.File, a Attr, x Xattrs, refs []nameRef) (string, int64, error) {
	tmp := filepath.Join(m.path, ".replfs/tmp", g.String()+"."+strconv.FormatUint(m.tmpSeq.Add(1), 10))
	mode, chmod := m.cr.createMode(a)
	fd, err := m.openNew(tmp, mode)
	if err != nil {
		return "", 0, err
	}
	n, err := m.fillFD(fd, tmp, chmod, g, int(src.Fd()), a, x, refs)
	if err != nil {
		os.Remove(tmp)
		return "", n, err
	}
	return tmp, n, nil
}

// copyContent copies src from offset 0 (copy_file_range where the kernel
// can, through Go's ReadFrom).
func copyContent(dst *os.File, src *os.File) (int64, error) {
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	return dst.ReadFrom(src)
}

func (m *Mirror) CreateFile(parent gfid.GFID, name string, g gfid.GFID, src *os.File, a Attr, x Xattrs) (int64, error) {
	return m.createFrom(parent, name, g, srcFile{int(src.Fd()), src.Name()}, a, x)
}

// createFrom is CreateFile from a descriptor.
func (m *Mirror) createFrom(parent gfid.GFID, name string, g gfid.GFID, src srcFile, a Attr, x Xattrs) (int64, error) {
	p, err := m.child(parent, name)
	if err != nil {
		return 0, err
	}
	// The file is made as its own index entry and gets its name only when
	// complete: no temporary name, and nothing torn is ever visible.
	if err := m.indexParents(g); err != nil {
		return 0, err
	}
	ip := m.t.indexPath(g)
	mode, chmod := m.cr.createMode(a)
	fd, err := m.openNew(ip, mode)
	if err != nil {
		return 0, err
	}
	n, err := m.fillFD(fd, ip, chmod, g, src.fd, a, x, []nameRef{{parent, name}})
	if err == nil {
		if err = unix.Linkat(unix.AT_FDCWD, ip, unix.AT_FDCWD, p, 0); err == unix.EEXIST {
			err = fs.ErrExist
		} else if err != nil {
			err = &fs.PathError{Op: "link", Path: p, Err: err}
		}
	}
	if err != nil {
		unix.Unlink(ip)
		return n, err
	}
	return n, nil
}

func (m *Mirror) WriteFile(g gfid.GFID, src *os.File, a Attr, x Xattrs) (int64, error) {
	ip := m.t.indexPath(g)
	var old unix.Stat_t
	if err := unix.Lstat(ip, &old); err != nil {
		if err == unix.ENOENT {
			return 0, errNoEntry
		}
		return 0, err
	}
	// Find every name of the inode: all must switch to the new content.
	// A name holding another inode with the same gfid is one an earlier
	// update cut short by a crash did not reach: it is replaced too.
	var live []string
	var refs []nameRef
	same := uint64(0)
	for _, r := range m.getNames(ip) {
		dp, err := m.dirPath(r.parent)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		p := dp + "/" + r.name
		if unix.Lstat(p, &st) != nil {
			continue
		}
		if st.Ino == old.Ino && st.Dev == old.Dev {
			same++
		} else if got, _ := m.t.gfidAt(p); got != g {
			continue
		}
		live = append(live, p)
		refs = append(refs, r)
	}
	if same != old.Nlink-1 {
		// The name list is incomplete (a crash between two steps): write
		// in place, which keeps every name but is not atomic.
		return m.writeInPlace(ip, src, a, x)
	}
	tmp, n, err := m.tmpFile(g, src, a, x, refs)
	if err != nil {
		return n, err
	}
	defer os.Remove(tmp)
	if err := m.linkIndex(g, tmp); err != nil {
		return n, err
	}
	// Replacing a name changes its directory's times, which a content
	// update must not: they are put back, under the directories' locks.
	unlock := m.lockDirs(live)
	defer unlock()
	dirTimes := make(map[string][2]unix.Timespec, len(live))
	for _, p := range live {
		d := filepath.Dir(p)
		var st unix.Stat_t
		if _, ok := dirTimes[d]; !ok && unix.Lstat(d, &st) == nil {
			dirTimes[d] = [2]unix.Timespec{st.Atim, st.Mtim}
		}
	}
	defer func() {
		for d, ts := range dirTimes {
			unix.UtimesNanoAt(unix.AT_FDCWD, d, ts[:], unix.AT_SYMLINK_NOFOLLOW)
		}
	}()
	for i, p := range live {
		if i == len(live)-1 {
			err = os.Rename(tmp, p)
		} else {
			side := filepath.Join(filepath.Dir(p), ".replfs-new."+filepath.Base(tmp))
			if err = unix.Linkat(unix.AT_FDCWD, tmp, unix.AT_FDCWD, side, 0); err == nil {
				err = os.Rename(side, p)
			}
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// dirLockStripes is how many locks Mirror.dirLocks spreads directories over.
const dirLockStripes = 64

// lockDirs locks the directories holding paths (in lock order, each lock
// once) and returns the function that unlocks them.
func (m *Mirror) lockDirs(paths []string) func() {
	var held [dirLockStripes]bool
	for _, p := range paths {
		h := fnv.New32a()
		h.Write([]byte(filepath.Dir(p)))
		held[h.Sum32()%uint32(len(held))] = true
	}
	for i, ok := range held {
		if ok {
			m.dirLocks[i].Lock()
		}
	}
	return func() {
		for i, ok := range held {
			if ok {
				m.dirLocks[i].Unlock()
			}
		}
	}
}

func (m *Mirror) writeInPlace(ip string, src *os.File, a Attr, x Xattrs) (int64, error) {
	f, err := os.OpenFile(ip, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return 0, err
	}
	n, err := copyContent(f, src)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	return n, m.setMetaPath(ip, a, x, MetaAll)
}

func (m *Mirror) Link(g, parent gfid.GFID, name string) error {
	p, err := m.child(parent, name)
	if err != nil {
		return err
	}
	ip := m.t.indexPath(g)
	if err := unix.Linkat(unix.AT_FDCWD, ip, unix.AT_FDCWD, p, 0); err != nil {
		if err == unix.EEXIST {
			return fs.ErrExist
		}
		if err == unix.ENOENT {
			return errNoEntry
		}
		return &fs.PathError{Op: "link", Path: p, Err: err}
	}
	return m.editNames(ip, nil, &nameRef{parent, name})
}

// holds checks that parent/name holds g.
func (m *Mirror) holds(parent gfid.GFID, name string, g gfid.GFID) (string, unix.Stat_t, error) {
	var st unix.Stat_t
	p, err := m.child(parent, name)
	if err != nil {
		return "", st, err
	}
	if err := unix.Lstat(p, &st); err != nil {
		return "", st, errNoEntry
	}
	if got, _ := m.t.gfidAt(p); got != g {
		return "", st, fmt.Errorf("%s holds %s, not %s: %w", p, got, g, fs.ErrExist)
	}
	return p, st, nil
}

func (m *Mirror) Unlink(parent gfid.GFID, name string, g gfid.GFID) error {
	p, st, err := m.holds(parent, name, g)
	if err != nil {
		return err
	}
	if err := unix.Unlink(p); err != nil {
		return &fs.PathError{Op: "unlink", Path: p, Err: err}
	}
	ip := m.t.indexPath(g)
	if g == gfid.Zero {
		return nil
	}
	if st.Nlink <= 2 {
		err = os.Remove(ip)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return m.editNames(ip, &nameRef{parent, name}, nil)
}

func (m *Mirror) Rmdir(parent gfid.GFID, name string, g gfid.GFID) error {
	p, _, err := m.holds(parent, name, g)
	if err != nil {
		return err
	}
	if err := unix.Rmdir(p); err != nil {
		return &fs.PathError{Op: "rmdir", Path: p, Err: err}
	}
	m.forgetDirs()
	if g != gfid.Zero {
		if err := os.Remove(m.t.indexPath(g)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (m *Mirror) Rename(g, oldParent gfid.GFID, oldName string, newParent gfid.GFID, newName string) error {
	op, st, err := m.holds(oldParent, oldName, g)
	if err != nil {
		return err
	}
	var np string
	if newParent == limbo {
		np = filepath.Join(m.path, limboDir, newName)
	} else if np, err = m.child(newParent, newName); err != nil {
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, op, unix.AT_FDCWD, np, unix.RENAME_NOREPLACE); err != nil {
		if err == unix.EEXIST {
			return fs.ErrExist
		}
		return &fs.PathError{Op: "rename", Path: op, Err: err}
	}
	if st.Mode&sIFMT == sIFDIR {
		m.forgetDirs()
		return m.setDirPointer(g, newParent, newName)
	}
	if g == gfid.Zero {
		return nil
	}
	drop, add := nameRef{oldParent, oldName}, nameRef{newParent, newName}
	if newParent == limbo {
		return m.editNames(m.t.indexPath(g), &drop, nil)
	}
	return m.editNames(m.t.indexPath(g), &drop, &add)
}

func (m *Mirror) Aside(parent gfid.GFID, name string, g gfid.GFID) error {
	return m.Rename(g, parent, name, limbo, g.String())
}

func (m *Mirror) Adopt(parent gfid.GFID, name string, g gfid.GFID) error {
	p, st, err := m.holds(parent, name, g)
	if err != nil {
		return err
	}
	if st.Mode&sIFMT == sIFDIR {
		return m.setDirPointer(g, parent, name)
	}
	if err := m.setNames(p, []nameRef{{parent, name}}); err != nil {
		return err
	}
	return m.linkIndex(g, p)
}

func (m *Mirror) EmptyLimbo() (int, error) {
	dir := filepath.Join(m.path, limboDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if err := m.removeTree(p); err != nil {
			return 0, err
		}
	}
	return len(ents), nil
}

// removeTree removes p and everything under it, with their index entries.
func (m *Mirror) removeTree(p string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil
	}
	g, _ := m.t.gfidAt(p)
	if st.Mode&sIFMT == sIFDIR {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := m.removeTree(p + "/" + n); err != nil {
				return err
			}
		}
		if err := unix.Rmdir(p); err != nil {
			return &fs.PathError{Op: "rmdir", Path: p, Err: err}
		}
		m.forgetDirs()
	} else if err := unix.Unlink(p); err != nil {
		return &fs.PathError{Op: "unlink", Path: p, Err: err}
	}
	if g != gfid.Zero && (st.Mode&sIFMT == sIFDIR || st.Nlink <= 2) {
		os.Remove(m.t.indexPath(g))
	}
	return nil
}

// RemoveAll removes parent/name (holding g) and its whole subtree.
func (m *Mirror) RemoveAll(parent gfid.GFID, name string, g gfid.GFID) error {
	p, _, err := m.holds(parent, name, g)
	if err != nil {
		return err
	}
	return m.removeTree(p)
}

func (m *Mirror) Sync() error {
	fd, err := unix.Open(m.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

func (m *Mirror) Stime() (time.Time, error) {
	v, err := xattr.LGet(m.path, m.stimeX)
	if err != nil {
		if errors.Is(err, unix.ENODATA) {
			return time.Time{}, nil
		}
		return time.Time{}, err
	}
	if len(v) != 12 {
		return time.Time{}, fmt.Errorf("mirror %s: stime xattr has wrong length", m.path)
	}
	return time.Unix(int64(binary.BigEndian.Uint64(v[:8])), int64(binary.BigEndian.Uint32(v[8:]))), nil
}

func (m *Mirror) SetStime(t time.Time) error {
	m.fresh.Store(false)
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.Unix()))
	binary.BigEndian.PutUint32(b[8:], uint32(t.Nanosecond()))
	return xattr.LSet(m.path, m.stimeX, b[:])
}

// writeFileAtomic writes a file so that a crash leaves the old or the new
// content, never a mix.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
