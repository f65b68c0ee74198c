package replicator

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/layout"
	"github.com/replfs/replfs/internal/target"
)

// tree reads a brick-shaped directory: gfids in xattrs and a gfid index
// under .replfs/gfid (hard links for non-directories, parent pointers for
// directories). Both the brick and a directory mirror are trees.
type tree struct {
	root  string
	gfidX string // xattr holding an inode's gfid
	xtime string // xattr holding a subtree's xtime (brick only)
	rd    *lazyRoot
}

func newTree(root, gfidX, xtime string) tree {
	return tree{root: root, gfidX: gfidX, xtime: xtime, rd: &lazyRoot{}}
}

// lazyRoot is a tree's root descriptor, opened on first use.
type lazyRoot struct {
	once sync.Once
	r    *layout.Root
	err  error
}

// openDir opens directory dp (a path below the tree's root, as the
// tree's walks build them) confined beneath the root: a symlink swapped in
// for a directory on the way is refused, never followed out of the tree.
func (t *tree) openDir(dp string) (int, error) {
	rel, ok := strings.CutPrefix(dp, t.root)
	if !ok || t.rd == nil || rel != "" && rel[0] != '/' {
		return openDir(dp)
	}
	t.rd.once.Do(func() { t.rd.r, t.rd.err = layout.OpenTrustedRoot(t.root) })
	if t.rd.err != nil {
		return -1, t.rd.err
	}
	return t.rd.r.OpenDir(strings.TrimPrefix(rel, "/"))
}

// limbo is the fixed gfid of a mirror's .replfs/limbo directory, where
// entries wait whose brick location is not ready yet (as the index can
// point into it, a later rename finds them there by gfid).
var limbo = gfid.GFID{15: 2}

// tmpG names a mirror's .replfs/tmp for its descriptor cache.
var tmpG = gfid.GFID{15: 3}

const (
	limboDir = ".replfs/limbo"
	tmpDir   = ".replfs/tmp"
)

// errNoEntry: the tree has no inode with that gfid.
var errNoEntry = fs.ErrNotExist

func (t *tree) indexPath(g gfid.GFID) string { return filepath.Join(t.root, g.IndexPath()) }

// dirPath returns the absolute path of directory g, following the chain of
// parent pointers (no kernel symlink-depth limit). It fails with
// fs.ErrNotExist when g is not a directory of the tree.
func (t *tree) dirPath(g gfid.GFID) (string, error) {
	var parts []string
	for i := 0; g != gfid.Root; i++ {
		if g == limbo {
			parts = append(parts, limboDir)
			break
		}
		if i > 4096 {
			return "", fmt.Errorf("%s: gfid index: pointer loop at %s", t.root, g)
		}
		p, name, err := t.dirParent(g)
		if err != nil {
			return "", err
		}
		parts = append(parts, name)
		g = p
	}
	var b strings.Builder
	b.WriteString(t.root)
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(parts[i])
	}
	return b.String(), nil
}

// dirParent reads directory g's index pointer: its parent and name. Only
// a symlink with one link and exactly the shape replfs writes is a
// pointer: a user's symlink is indexed by a hard link to it, and a name
// such as ".." is never taken from one (layout.ParsePointer).
func (t *tree) dirParent(g gfid.GFID) (gfid.GFID, string, error) {
	ip := t.indexPath(g)
	var st unix.Stat_t
	if err := unix.Lstat(ip, &st); err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR {
			return gfid.Zero, "", &fs.PathError{Op: "lstat", Path: ip, Err: fs.ErrNotExist}
		}
		return gfid.Zero, "", &fs.PathError{Op: "lstat", Path: ip, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Nlink != 1 {
		return gfid.Zero, "", fmt.Errorf("%s: %s is not a directory: %w", t.root, g, fs.ErrNotExist)
	}
	target, err := os.Readlink(ip)
	if err != nil {
		return gfid.Zero, "", err
	}
	pg, name, err := layout.ParsePointer(target)
	if err != nil {
		// Not a directory pointer: the index link of a user's symlink
		// whose last name is gone (it has one link left, like a pointer).
		return gfid.Zero, "", fmt.Errorf("%s: gfid index: %s: %w: %w", t.root, g, err, fs.ErrNotExist)
	}
	return pg, name, nil
}

// gfidAt reads the gfid of path p (not following a symlink).
func (t *tree) gfidAt(p string) (gfid.GFID, error) {
	var b [16]byte
	n, err := unix.Lgetxattr(p, t.gfidX, b[:])
	if err != nil {
		if err == unix.ENODATA {
			return gfid.Zero, nil
		}
		return gfid.Zero, &fs.PathError{Op: "getxattr gfid", Path: p, Err: err}
	}
	if n != 16 {
		return gfid.Zero, nil
	}
	return gfid.GFID(b), nil
}

// statGFID stats the inode g: a directory through its path, anything else
// through its index link. An index link whose inode has no other name is a
// file deleted on its way out: reported as missing.
func (t *tree) statGFID(g gfid.GFID) (string, unix.Stat_t, error) {
	var st unix.Stat_t
	if g == gfid.Root {
		err := unix.Lstat(t.root, &st)
		return t.root, st, err
	}
	ip := t.indexPath(g)
	if err := unix.Lstat(ip, &st); err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR {
			return "", st, errNoEntry
		}
		return "", st, &fs.PathError{Op: "lstat", Path: ip, Err: err}
	}
	// A directory's pointer is a symlink with one link; a user's symlink
	// is indexed by a hard link (two or more).
	if st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Nlink > 1 {
		if st.Nlink <= 1 {
			return "", st, errNoEntry
		}
		return ip, st, nil
	}
	p, err := t.dirPath(g)
	if err != nil {
		return "", st, err
	}
	if err := unix.Lstat(p, &st); err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR {
			return "", st, errNoEntry
		}
		return "", st, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return "", st, errNoEntry
	}
	if got, _ := t.gfidAt(p); got != g {
		return "", st, errNoEntry // a stale pointer
	}
	return p, st, nil
}

// has reports whether the tree holds a live inode with gfid g.
func (t *tree) has(g gfid.GFID) bool {
	_, _, err := t.statGFID(g)
	return err == nil
}

// hasStable is has for decisions that remove things: a directory whose
// path does not lead to it while its index entry exists is being renamed
// (errUnstable), not gone.
func (t *tree) hasStable(g gfid.GFID) (bool, error) {
	_, _, err := t.statGFID(g)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	var st unix.Stat_t
	if unix.Lstat(t.indexPath(g), &st) == nil && st.Mode&sIFMT == sIFLNK && st.Nlink == 1 {
		if _, err := t.stableDirPath(g); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
	}
	return false, nil
}

// errUnstable: a path resolved through the index does not lead to the
// directory it names — a rename of an ancestor is under way on the live
// brick (its index pointer is rewritten just after it). Retry shortly.
var errUnstable = errors.New("directory path changing under a rename; retrying")

// stableDirPath resolves directory g and checks that the path leads to g.
// It fails with fs.ErrNotExist when g is gone, errUnstable while a rename
// moves it or an ancestor.
func (t *tree) stableDirPath(g gfid.GFID) (string, error) {
	dp, err := t.dirPath(g)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && t.has(g) {
			return "", errUnstable
		}
		return "", err
	}
	if g == gfid.Root || g == limbo {
		return dp, nil
	}
	if got, err := t.gfidAt(dp); err == nil && got == g {
		return dp, nil
	}
	if t.hasIndexEntry(g) {
		return "", errUnstable
	}
	return "", errNoEntry
}

func (t *tree) hasIndexEntry(g gfid.GFID) bool {
	var st unix.Stat_t
	return unix.Lstat(t.indexPath(g), &st) == nil
}

// lookup returns the gfid and stat of parent/name; found is false when
// the parent or the name does not exist.
func (t *tree) lookup(parent gfid.GFID, name string) (g gfid.GFID, st unix.Stat_t, found bool, err error) {
	dp, err := t.stableDirPath(parent)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return gfid.Zero, st, false, nil
		}
		return gfid.Zero, st, false, err
	}
	p := dp + "/" + name
	if err := unix.Lstat(p, &st); err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR {
			return gfid.Zero, st, false, nil
		}
		return gfid.Zero, st, false, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	g, err = t.gfidAt(p)
	return g, st, true, err
}

// dirent is one name of a directory, as getdents returns it.
type dirent struct {
	name string
	ino  uint64
	typ  uint8 // d_type: unix.DT_REG, ..., DT_UNKNOWN where the file system does not say
}

// readNames lists directory dp in inode order: on a cold cache, looking
// the names up in that order reads each inode-table block once, in disk
// order, where the directory's hash order jumps between them.
func readNames(dp string) ([]dirent, error) {
	fd, err := unix.Open(dp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dp, Err: err}
	}
	defer unix.Close(fd)
	return readNamesFD(fd, dp)
}

// direntBufs are getdents buffers, reused: a walk lists every directory.
var direntBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// readNamesFD is readNames on directory dp open as fd.
func readNamesFD(fd int, dp string) ([]dirent, error) {
	var out []dirent
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	buf := *bp
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "getdents", Path: dp, Err: err}
		}
		if n <= 0 {
			break
		}
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return nil, fmt.Errorf("getdents %s: bad record length %d", dp, reclen)
			}
			name := b[19:reclen]
			if k := bytes.IndexByte(name, 0); k >= 0 {
				name = name[:k]
			}
			if s := string(name); s != "." && s != ".." {
				out = append(out, dirent{name: s, ino: binary.NativeEndian.Uint64(b[0:8]), typ: b[18]})
			}
			b = b[reclen:]
		}
	}
	slices.SortFunc(out, func(a, b dirent) int {
		switch {
		case a.ino < b.ino:
			return -1
		case a.ino > b.ino:
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	return out, nil
}

// readDir lists directory dp (.replfs skipped at the root of a brick or
// mirror) with each entry's attributes and gfid.
func readDir(t *tree, dp string, root bool) ([]target.DirEntry, error) {
	fd, err := t.openDir(dp)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return readDirFD(t, fd, dp, root)
}

// readDirFD is readDir of dp open as fd: each entry is read relative to
// fd, in inode order. An entry removed meanwhile is left out; a gfid
// xattr that is not 16 bytes reads as none.
func readDirFD(t *tree, fd int, dp string, root bool) ([]target.DirEntry, error) {
	names, err := readNamesFD(fd, dp)
	if err != nil {
		return nil, err
	}
	out := make([]target.DirEntry, 0, len(names))
	for _, d := range names {
		n := d.name
		if root && n == gfid.StateDir {
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return nil, &fs.PathError{Op: "lstat", Path: dp + "/" + n, Err: err}
		}
		e := target.DirEntry{Name: n, Mode: st.Mode & sIFMT, Attr: target.AttrOf(&st)}
		var g [16]byte
		k, err := getxattrAt(fd, n, dp+"/"+n, t.gfidX, g[:])
		switch {
		case err == nil && k == 16:
			e.GFID = gfid.GFID(g)
		case err == unix.ENOENT:
			continue
		case err != nil && err != unix.ENODATA && err != unix.ERANGE:
			return nil, &fs.PathError{Op: "getxattr gfid", Path: dp + "/" + n, Err: err}
		}
		out = append(out, e)
	}
	return out, nil
}
