package replicator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/layout"
	"github.com/replfs/replfs/internal/target"
)

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

func decodeParents(b []byte) []gfid.GFID {
	var out []gfid.GFID
	for ; len(b) >= 16; b = b[16:] {
		out = append(out, gfid.GFID(b[:16]))
	}
	return out
}

// parentsAt reads the parent list of the inode dfd/name.
func (m *Mirror) parentsAt(dfd int, name string) []gfid.GFID {
	v, err := xattrValue(func(b []byte) (int, error) { return layout.Getxattr(dfd, name, m.namesX, b) })
	if err != nil {
		return nil
	}
	return decodeParents(v)
}

func (m *Mirror) doParents(ctx context.Context, g gfid.GFID) ([]gfid.GFID, error) {
	bk, name, err := m.bucket(g, false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer bk.put()
	ps := m.parentsAt(bk.fd, name)
	return slices.DeleteFunc(ps, func(p gfid.GFID) bool { return p == limbo }), nil
}

// namesOfInode lists the entries of directory d that are inode ino.
func namesOfInode(d *cachedFD, ino uint64) []string {
	fd, err := d.reopen()
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	ents, _ := readNamesFD(fd, "")
	var out []string
	for _, e := range ents {
		if e.ino == ino {
			out = append(out, e.name)
		}
	}
	return out
}

func (m *Mirror) setNamesAt(dfd int, name string, refs []nameRef) error {
	if len(refs) == 0 {
		err := layout.Removexattr(dfd, name, m.namesX)
		if err == unix.ENODATA {
			return nil
		}
		return err
	}
	return layout.Setxattr(dfd, name, m.namesX, encodeNames(refs), 0)
}

// editNames records that the inode dfd/name lost the name drop and/or
// gained the name add. A parent is dropped from the list only when the
// inode has no name left there (or a single name in all).
func (m *Mirror) editNames(dfd int, name string, drop, add *nameRef) error {
	parents := m.parentsAt(dfd, name)
	var st unix.Stat_t
	if err := layout.Lstat(dfd, name, &st); err != nil {
		return err
	}
	var refs []nameRef
	for _, q := range parents {
		if drop != nil && q == drop.parent {
			if st.Nlink <= 2 && add != nil {
				continue // its only name moves
			}
			pd, err := m.openDir(q)
			if err != nil {
				continue
			}
			left := len(namesOfInode(pd, st.Ino))
			pd.put()
			if left == 0 {
				continue
			}
		}
		refs = append(refs, nameRef{parent: q})
	}
	if add != nil {
		refs = append(refs, *add)
	}
	return m.setNamesAt(dfd, name, refs)
}

// namesOfEntries lists directory d.
func namesOfEntries(d *cachedFD) []dirent {
	fd, err := d.reopen()
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	ents, _ := readNamesFD(fd, "")
	return ents
}

// liveName is one name of an inode, with its directory open.
type liveName struct {
	nameRef
	dir *cachedFD
	dfd int
}

// liveNames finds every name of the inode st (indexed as g): the entries
// of the directories its parent list names whose inode number is st's (a
// name replaced meanwhile by another inode of gfid g is listed too). same
// counts the names that still are the inode.
func (m *Mirror) liveNames(g gfid.GFID, parents []gfid.GFID, st *unix.Stat_t) (live []liveName, same uint64) {
	for _, parent := range parents {
		d, err := m.openDir(parent)
		if err != nil {
			continue
		}
		kept := false
		for _, e := range namesOfEntries(d) {
			var est unix.Stat_t
			if e.ino != st.Ino || layout.Lstat(d.fd, e.name, &est) != nil || est.Mode&sIFMT != sIFREG {
				continue
			}
			if est.Ino == st.Ino && est.Dev == st.Dev {
				same++
			} else if got, _ := layout.GFIDOf(d.fd, e.name, m.t.gfidX); got != g {
				continue
			}
			live = append(live, liveName{nameRef{parent, e.name}, d, d.fd})
			kept = true
		}
		if !kept {
			d.put()
		}
	}
	return live, same
}

// closeLive releases the directories of live names (one reference each,
// however many names it holds).
func closeLive(live []liveName) {
	seen := map[*cachedFD]bool{}
	for _, l := range live {
		if !seen[l.dir] {
			seen[l.dir] = true
			l.dir.put()
		}
	}
}

// tmpFile makes a new regular file in .replfs/tmp with src's content, g's
// gfid, the names refs and a's attributes; it returns the tmp directory
// open and the file's name there.
func (m *Mirror) tmpFile(g gfid.GFID, src target.Source, a target.Attr, x target.Xattrs, refs []nameRef) (*cachedFD, string, int64, error) {
	td, err := m.openDir(tmpG)
	if err != nil {
		return nil, "", 0, err
	}
	name := g.String() + "." + strconv.FormatUint(m.tmpSeq.Add(1), 10)
	mode, chmod := m.cr.createMode(a)
	fd, err := m.openNew(td.fd, name, mode)
	if err != nil {
		td.put()
		return nil, "", 0, err
	}
	n, err := m.fillFD(fd, name, chmod, g, src, a, x, refs)
	if err != nil {
		unix.Unlinkat(td.fd, name, 0)
		td.put()
		return nil, "", n, err
	}
	return td, name, n, nil
}

func (m *Mirror) doCreateFile(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID, src target.Source, a target.Attr, x target.Xattrs) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	d, err := m.openParent(parent, name)
	if err != nil {
		return 0, err
	}
	defer d.put()
	// The file is made as its own index entry and gets its name only when
	// complete: no temporary name, and nothing torn is ever visible.
	bk, ename, err := m.bucket(g, true)
	if err != nil {
		return 0, err
	}
	defer bk.put()
	mode, chmod := m.cr.createMode(a)
	fd, err := m.openNew(bk.fd, ename, mode)
	if err != nil {
		return 0, err
	}
	n, err := m.fillFD(fd, ename, chmod, g, src, a, x, []nameRef{{parent, name}})
	if err == nil {
		if err = unix.Linkat(bk.fd, ename, d.fd, name, 0); err == unix.EEXIST {
			err = fs.ErrExist
		} else if err != nil {
			err = &fs.PathError{Op: "link", Path: name, Err: err}
		}
	}
	if err != nil {
		unix.Unlinkat(bk.fd, ename, 0)
		return n, err
	}
	return n, nil
}

// WriteFile replaces the content of regular file g under every one of its
// names at once: the new content is written aside, indexed, and renamed
// over each name.
func (m *Mirror) doWriteFile(ctx context.Context, g gfid.GFID, src target.Source, a target.Attr, x target.Xattrs) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	bk, ename, err := m.bucket(g, false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, errNoEntry
		}
		return 0, err
	}
	defer bk.put()
	var old unix.Stat_t
	if err := layout.Lstat(bk.fd, ename, &old); err != nil {
		if err == unix.ENOENT {
			return 0, errNoEntry
		}
		return 0, err
	}
	if old.Mode&sIFMT != sIFREG {
		return 0, fmt.Errorf("mirror %s: write %s: not a regular file: %w", m.path, g, fs.ErrNotExist)
	}
	live, same := m.liveNames(g, m.parentsAt(bk.fd, ename), &old)
	defer closeLive(live)
	if same != old.Nlink-1 {
		// The name list is incomplete (a crash between two steps): write
		// in place, which keeps every name but is not atomic.
		return m.writeInPlace(bk.fd, ename, src, a, x)
	}
	refs := make([]nameRef, len(live))
	for i, l := range live {
		refs[i] = l.nameRef
	}
	td, tmp, n, err := m.tmpFile(g, src, a, x, refs)
	if err != nil {
		return n, err
	}
	defer td.put()
	defer unix.Unlinkat(td.fd, tmp, 0)
	if err := m.linkIndex(g, td.fd, tmp); err != nil {
		return n, err
	}
	return n, m.switchNames(live, td.fd, tmp)
}

// switchNames renames the new file tfd/tmp over every live name.
// Replacing a name changes its directory's times, which a content update
// must not: they are put back, under the directories' locks.
func (m *Mirror) switchNames(live []liveName, tfd int, tmp string) error {
	unlock := m.lockDirs(live)
	defer unlock()
	type times struct {
		fd     int
		at, mt unix.Timespec
	}
	var saved []times
	for _, l := range live {
		var st unix.Stat_t
		if !slices.ContainsFunc(saved, func(t times) bool { return t.fd == l.dfd }) && unix.Fstat(l.dfd, &st) == nil {
			saved = append(saved, times{l.dfd, st.Atim, st.Mtim})
		}
	}
	defer func() {
		for _, t := range saved {
			unix.UtimesNanoAt(t.fd, "", []unix.Timespec{t.at, t.mt}, unix.AT_EMPTY_PATH)
		}
	}()
	for i, l := range live {
		var err error
		if i == len(live)-1 {
			err = unix.Renameat(tfd, tmp, l.dfd, l.name)
		} else {
			side := ".replfs-new." + tmp
			if err = unix.Linkat(tfd, tmp, l.dfd, side, 0); err == nil {
				err = unix.Renameat(l.dfd, side, l.dfd, l.name)
			}
		}
		if err != nil {
			return &fs.PathError{Op: "rename", Path: l.name, Err: err}
		}
	}
	return nil
}

// dirLockStripes is how many locks Mirror.dirLocks spreads directories over.
const dirLockStripes = 64

// lockDirs locks the directories holding live names (in lock order, each
// lock once) and returns the function that unlocks them.
func (m *Mirror) lockDirs(live []liveName) func() {
	var held [dirLockStripes]bool
	for _, l := range live {
		held[int(l.parent[15])%dirLockStripes] = true
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

func (m *Mirror) writeInPlace(bfd int, name string, src target.Source, a target.Attr, x target.Xattrs) (int64, error) {
	fd, err := layout.OpenBeneath(bfd, name, unix.O_WRONLY|unix.O_TRUNC, 0)
	if err != nil {
		return 0, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	n, err := m.copySource(fd, src, src.Size())
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	return n, m.setMetaAt(bfd, name, a, x, target.MetaAll)
}

// ownXattr reports replfs's own xattrs, never copied as user data.
func ownXattr(name string) bool {
	return strings.HasPrefix(name, gfid.PrefixTrusted) || strings.HasPrefix(name, gfid.PrefixUser)
}

// xattrsAt reads every xattr of dfd/name but replfs's own.
func xattrsAt(dfd int, name string) (target.Xattrs, error) {
	list, err := listXattrs(func(b []byte) (int, error) { return layout.Listxattr(dfd, name, b) })
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, &fs.PathError{Op: "listxattr", Path: name, Err: err}
	}
	return userXattrs(list, func(n string) ([]byte, error) {
		return xattrValue(func(b []byte) (int, error) { return layout.Getxattr(dfd, name, n, b) })
	})
}

// applyXattrsAt makes dfd/name's xattrs (replfs's own aside) equal to want.
func applyXattrsAt(dfd int, name string, want target.Xattrs) error {
	have, err := xattrsAt(dfd, name)
	if err != nil {
		return err
	}
	for n := range have {
		if _, ok := want[n]; !ok {
			if err := layout.Removexattr(dfd, name, n); err != nil && err != unix.ENODATA {
				return err
			}
		}
	}
	for n, v := range want {
		if old, ok := have[n]; ok && bytes.Equal(old, v) {
			continue
		}
		if err := layout.Setxattr(dfd, name, n, v, 0); err != nil {
			return &xattrError{n, err}
		}
	}
	return nil
}
