package memtarget

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/layout"
	"github.com/replfs/replfs/internal/target"
)

// Inode numbers of the two directories every place has.
const (
	rootIno  = 1
	limboIno = 2
)

// ref is one name of an inode: an entry of directory dir.
type ref struct {
	dir  uint64
	name string
}

// inode is one inode of the tree. Inodes are keyed by their own number,
// not by gfid, so that the tree can hold what a disk tree can: an entry
// that lost its index entry (Unindex), or one without a gfid.
type inode struct {
	ino                 uint64
	g                   gfid.GFID
	mode                uint32 // type and permission bits
	uid, gid            uint32
	rdev                uint64
	atime, mtime, ctime int64
	// data is never changed in place: WriteFile stores a new slice, so a
	// copy of the tree (Sync) can share it.
	data   []byte
	link   string
	xattrs target.Xattrs
	kids   map[string]uint64 // directories: name -> inode
	names  []ref             // every name; a directory has one, root and limbo none
}

func (n *inode) isDir() bool { return n.mode&unix.S_IFMT == unix.S_IFDIR }
func (n *inode) isReg() bool { return n.mode&unix.S_IFMT == unix.S_IFREG }

// tree is a brick-shaped namespace: inodes, and the gfid index that
// reaches them.
type tree struct {
	inodes  map[uint64]*inode
	index   map[gfid.GFID]uint64
	nextIno uint64
}

func newTree(now int64) *tree {
	tr := &tree{inodes: map[uint64]*inode{}, index: map[gfid.GFID]uint64{}, nextIno: limboIno + 1}
	for _, d := range []struct {
		ino  uint64
		g    gfid.GFID
		mode uint32
	}{{rootIno, gfid.Root, 0o755}, {limboIno, target.Limbo, 0o700}} {
		tr.inodes[d.ino] = &inode{ino: d.ino, g: d.g, mode: unix.S_IFDIR | d.mode,
			atime: now, mtime: now, ctime: now, kids: map[string]uint64{}}
		tr.index[d.g] = d.ino
	}
	return tr
}

// clone is a deep copy but for content, which is never changed in place.
func (tr *tree) clone() *tree {
	c := &tree{inodes: make(map[uint64]*inode, len(tr.inodes)), index: maps.Clone(tr.index), nextIno: tr.nextIno}
	for ino, n := range tr.inodes {
		m := *n
		m.xattrs = cloneXattrs(n.xattrs)
		m.kids = maps.Clone(n.kids)
		m.names = slices.Clone(n.names)
		c.inodes[ino] = &m
	}
	return c
}

func cloneXattrs(x target.Xattrs) target.Xattrs {
	if len(x) == 0 {
		return nil
	}
	c := make(target.Xattrs, len(x))
	for k, v := range x {
		c[k] = slices.Clone(v)
	}
	return c
}

// byGFID finds inode g through the index.
func (tr *tree) byGFID(g gfid.GFID) (*inode, bool) {
	ino, ok := tr.index[g]
	if !ok {
		return nil, false
	}
	n, ok := tr.inodes[ino]
	return n, ok
}

// dir finds directory g through the index.
func (tr *tree) dir(g gfid.GFID) (*inode, error) {
	n, ok := tr.byGFID(g)
	switch {
	case !ok:
		return nil, fmt.Errorf("no directory %s: %w", g, target.ErrNotExist)
	case !n.isDir():
		return nil, fmt.Errorf("%s is not a directory: %w", g, target.ErrNotExist)
	}
	return n, nil
}

// unindexed reports whether an inode with gfid g exists but the index
// does not lead to it.
func (tr *tree) unindexed(g gfid.GFID) bool {
	for _, n := range tr.inodes {
		if n.g == g && tr.index[g] != n.ino {
			return true
		}
	}
	return false
}

func (tr *tree) child(d *inode, name string) (*inode, bool) {
	ino, ok := d.kids[name]
	if !ok {
		return nil, false
	}
	return tr.inodes[ino], true
}

// checkName refuses a name no directory mirror could hold, and .replfs at
// the root, where the target keeps its own state.
func checkName(d *inode, name string) error {
	if err := layout.ValidName(name); err != nil {
		return err
	}
	if d.ino == rootIno && name == gfid.StateDir {
		return fmt.Errorf("%s is the target's own", name)
	}
	return nil
}

// path is the root-relative path of d/name ("." for the root itself),
// for logs, snapshots and messages.
func (tr *tree) path(d *inode, name string) string {
	if name == "" {
		return tr.dirPath(d, 0)
	}
	return join(tr.dirPath(d, 0), name)
}

func (tr *tree) dirPath(d *inode, depth int) string {
	switch {
	case d.ino == rootIno:
		return "."
	case d.ino == limboIno:
		return gfid.StateDir + "/limbo"
	case len(d.names) == 0 || depth > 4096:
		return "?" + d.g.String()
	}
	r := d.names[0]
	return join(tr.dirPath(tr.inodes[r.dir], depth+1), r.name)
}

func join(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}

// paths lists every name of n, sorted.
func (tr *tree) paths(n *inode) []string {
	if len(n.names) == 0 {
		return []string{tr.dirPath(n, 0)}
	}
	out := make([]string, 0, len(n.names))
	for _, r := range n.names {
		out = append(out, tr.path(tr.inodes[r.dir], r.name))
	}
	sort.Strings(out)
	return out
}

// within reports whether directory d is n or lies below it.
func (tr *tree) within(d, n *inode) bool {
	for depth := 0; depth <= 4096; depth++ {
		if d.ino == n.ino {
			return true
		}
		if len(d.names) == 0 {
			return false
		}
		d = tr.inodes[d.names[0].dir]
	}
	return true
}

// add makes n the entry d/name.
func (tr *tree) add(d *inode, name string, n *inode, now int64) {
	d.kids[name] = n.ino
	n.names = append(n.names, ref{d.ino, name})
	d.mtime, d.ctime, n.ctime = now, now, now
}

// drop removes the entry d/name, and its inode with its last name.
func (tr *tree) drop(d *inode, name string, now int64) {
	n := tr.inodes[d.kids[name]]
	delete(d.kids, name)
	d.mtime, d.ctime, n.ctime = now, now, now
	n.names = slices.DeleteFunc(n.names, func(r ref) bool { return r == ref{d.ino, name} })
	if len(n.names) == 0 {
		delete(tr.inodes, n.ino)
		if tr.index[n.g] == n.ino {
			delete(tr.index, n.g)
		}
	}
}

// removeTree removes d/name and, for a directory, everything below it.
// A file keeps living under its names elsewhere.
func (tr *tree) removeTree(d *inode, name string, now int64) {
	n, ok := tr.child(d, name)
	if !ok {
		return
	}
	if n.isDir() {
		for _, k := range slices.Sorted(maps.Keys(n.kids)) {
			tr.removeTree(n, k, now)
		}
	}
	tr.drop(d, name, now)
}

// attr is n's Attr: Nlink counts names (a directory, as on disk: two
// plus one per subdirectory), Size is the content's or the link's.
func (tr *tree) attr(n *inode) target.Attr {
	a := target.Attr{Mode: n.mode, UID: n.uid, GID: n.gid, Rdev: n.rdev, Atime: n.atime,
		Mtime: n.mtime, Ctime: n.ctime, Ino: n.ino, Nlink: uint32(len(n.names))}
	switch n.mode & unix.S_IFMT {
	case unix.S_IFREG:
		a.Size = int64(len(n.data))
	case unix.S_IFLNK:
		a.Size = int64(len(n.link))
	case unix.S_IFDIR:
		a.Nlink = 2
		for _, ino := range n.kids {
			if tr.inodes[ino].isDir() {
				a.Nlink++
			}
		}
	}
	return a
}

// kid is one entry of a directory.
type kid struct {
	name string
	n    *inode
}

// entries lists directory d sorted by name.
func (tr *tree) entries(d *inode) []kid {
	names := slices.Sorted(maps.Keys(d.kids))
	out := make([]kid, len(names))
	for i, name := range names {
		out[i] = kid{name, tr.inodes[d.kids[name]]}
	}
	return out
}

// holds finds parent/name and checks that it is g: an absent entry is
// ErrNotExist, one holding another gfid ErrExist.
func (tr *tree) holds(parent gfid.GFID, name string, g gfid.GFID) (*inode, *inode, error) {
	d, err := tr.dir(parent)
	if err != nil {
		return nil, nil, err
	}
	if err := checkName(d, name); err != nil {
		return nil, nil, err
	}
	n, ok := tr.child(d, name)
	if !ok {
		return nil, nil, fmt.Errorf("%s: %w", tr.path(d, name), target.ErrNotExist)
	}
	if n.g != g {
		return nil, nil, fmt.Errorf("%s holds %s, not %s: %w", tr.path(d, name), n.g, g, target.ErrExist)
	}
	return d, n, nil
}

// free finds directory parent and checks that name is free in it.
func (tr *tree) free(parent gfid.GFID, name string) (*inode, error) {
	d, err := tr.dir(parent)
	if err != nil {
		return nil, err
	}
	if err := checkName(d, name); err != nil {
		return nil, err
	}
	if _, taken := d.kids[name]; taken {
		return nil, fmt.Errorf("%s: %w", tr.path(d, name), target.ErrExist)
	}
	return d, nil
}
