package memtarget

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// Rename moves oldParent/oldName, which must hold g, to the free name
// newParent/newName; a directory takes its subtree along (its children
// name it by inode, not by path).
func (t *Target) Rename(ctx context.Context, g, oldParent gfid.GFID, oldName string, newParent gfid.GFID, newName string) error {
	if err := t.begin(ctx); err != nil {
		return err
	}
	defer t.end()
	from, to, err := t.move(g, oldParent, oldName, newParent, newName)
	if err != nil {
		return t.errorf("rename %s: %w", oldName, err)
	}
	t.logOp("rename %s -> %s", from, to)
	return nil
}

// Aside moves parent/name into limbo as g.String().
func (t *Target) Aside(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error {
	if err := t.begin(ctx); err != nil {
		return err
	}
	defer t.end()
	from, _, err := t.move(g, parent, name, target.Limbo, g.String())
	if err != nil {
		return t.errorf("aside %s: %w", name, err)
	}
	t.logOp("aside %s", from)
	return nil
}

// move is Rename under the lock; it returns the old and new paths.
func (t *Target) move(g, oldParent gfid.GFID, oldName string, newParent gfid.GFID, newName string) (string, string, error) {
	tr := t.p.live
	od, n, err := tr.holds(oldParent, oldName, g)
	if err != nil {
		return "", "", err
	}
	nd, err := tr.free(newParent, newName)
	if err != nil {
		return "", "", err
	}
	from, to := tr.path(od, oldName), tr.path(nd, newName)
	if n.isDir() && tr.within(nd, n) {
		return "", "", fmt.Errorf("%s into its own subtree %s: %w", from, to, unix.EINVAL)
	}
	if err := t.p.failure(from, to); err != nil {
		return "", "", err
	}
	now := t.nowNano()
	// add before drop: drop would forget an inode left with no name.
	tr.add(nd, newName, n, now)
	delete(od.kids, oldName)
	n.names = slices.DeleteFunc(n.names, func(r ref) bool { return r == ref{od.ino, oldName} })
	od.mtime, od.ctime = now, now
	return from, to, nil
}

// EmptyLimbo removes everything in limbo; a file set aside keeps living
// under its names elsewhere.
func (t *Target) EmptyLimbo(ctx context.Context) (int, error) {
	if err := t.begin(ctx); err != nil {
		return 0, err
	}
	defer t.end()
	tr := t.p.live
	limbo := tr.inodes[limboIno]
	n := len(limbo.kids)
	for _, name := range slices.Sorted(maps.Keys(limbo.kids)) {
		tr.removeTree(limbo, name, t.nowNano())
	}
	if n > 0 {
		t.logOp("emptylimbo %d", n)
	}
	return n, nil
}

// SetMeta sets what of a and x on inode g, which must be of a's type.
func (t *Target) SetMeta(ctx context.Context, g gfid.GFID, a target.Attr, x target.Xattrs, what target.Meta) error {
	if err := t.begin(ctx); err != nil {
		return err
	}
	defer t.end()
	tr := t.p.live
	n, ok := tr.byGFID(g)
	if !ok {
		return t.errorf("setmeta %s: %w", g, target.ErrNotExist)
	}
	paths := tr.paths(n)
	if n.mode&unix.S_IFMT != a.Type() {
		return t.errorf("setmeta %s: not of type %o: %w", paths[0], a.Type(), target.ErrNotExist)
	}
	if err := t.p.failure(paths...); err != nil {
		return err
	}
	if what&target.MetaOwner != 0 {
		n.uid, n.gid = a.UID, a.GID
	}
	if what&target.MetaMode != 0 && a.Type() != unix.S_IFLNK { // a symlink's mode is not settable
		n.mode = a.Type() | a.Mode&0o7777
	}
	if what&target.MetaXattrs != 0 {
		n.xattrs = cloneXattrs(x)
	}
	if what&target.MetaTimes != 0 {
		n.atime, n.mtime = a.Atime, a.Mtime
	}
	n.ctime = t.nowNano()
	t.logOp("setmeta %s", paths[0])
	return nil
}

// Link adds the name parent/name to non-directory g.
func (t *Target) Link(ctx context.Context, g, parent gfid.GFID, name string) error {
	if err := t.begin(ctx); err != nil {
		return err
	}
	defer t.end()
	tr := t.p.live
	n, ok := tr.byGFID(g)
	if !ok || n.isDir() || len(n.names) == 0 {
		return t.errorf("link %s: no non-directory %s: %w", name, g, target.ErrNotExist)
	}
	d, err := tr.free(parent, name)
	if err != nil {
		return t.errorf("link %s: %w", name, err)
	}
	from, to := tr.paths(n)[0], tr.path(d, name)
	if err := t.p.failure(to); err != nil {
		return err
	}
	tr.add(d, name, n, t.nowNano())
	t.logOp("link %s -> %s", from, to)
	return nil
}

// Relink makes parent/name, a copy of g, a name of the inode the index
// leads to; a copy the index has lost becomes that inode.
func (t *Target) Relink(ctx context.Context, g, parent gfid.GFID, name string) error {
	if err := t.begin(ctx); err != nil {
		return err
	}
	defer t.end()
	tr := t.p.live
	d, copy, err := tr.holds(parent, name, g)
	if err != nil {
		return t.errorf("relink %s: %w", name, err)
	}
	p := tr.path(d, name)
	n, ok := tr.byGFID(g)
	switch {
	case ok && n == copy:
		return nil
	case ok && (n.isDir() || copy.isDir()):
		return t.errorf("relink %s: a directory: %w", p, unix.EISDIR)
	}
	if err := t.p.failure(p); err != nil {
		return err
	}
	if !ok {
		tr.index[g] = copy.ino
	} else {
		now := t.nowNano()
		tr.drop(d, name, now)
		tr.add(d, name, n, now)
	}
	t.logOp("relink %s", p)
	return nil
}

// Parents lists the directories holding g's names (limbo aside).
func (t *Target) Parents(ctx context.Context, g gfid.GFID) ([]gfid.GFID, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	defer t.end()
	tr := t.p.live
	n, ok := tr.byGFID(g)
	if !ok || n.isDir() {
		return nil, nil
	}
	var out []gfid.GFID
	for _, r := range n.names {
		pg := tr.inodes[r.dir].g
		if r.dir != limboIno && !slices.Contains(out, pg) {
			out = append(out, pg)
		}
	}
	return out, nil
}

// Adopt makes the index lead to parent/name, which holds g.
func (t *Target) Adopt(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error {
	return t.reindex(ctx, "adopt", parent, name, g, false)
}

// Repoint makes the index lead to directory parent/name, which holds g.
func (t *Target) Repoint(ctx context.Context, g, parent gfid.GFID, name string) error {
	return t.reindex(ctx, "repoint", parent, name, g, true)
}

func (t *Target) reindex(ctx context.Context, op string, parent gfid.GFID, name string, g gfid.GFID, dir bool) error {
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
	if dir && !n.isDir() {
		return t.errorf("%s %s: %w", op, p, unix.ENOTDIR)
	}
	if tr.index[g] == n.ino {
		return nil
	}
	if err := t.p.failure(p); err != nil {
		return err
	}
	tr.index[g] = n.ino
	t.logOp("%s %s", op, p)
	return nil
}
