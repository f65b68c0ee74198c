package memtarget

import (
	"context"
	"fmt"

	"github.com/replfs/replfs/internal/contenthash"
	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// lookup finds parent/name; a missing parent or name is not an error.
func (tr *tree) lookup(parent gfid.GFID, name string) (*inode, bool, error) {
	d, ok := tr.byGFID(parent)
	if !ok || !d.isDir() {
		return nil, false, nil
	}
	if err := checkName(d, name); err != nil {
		return nil, false, err
	}
	n, ok := tr.child(d, name)
	return n, ok, nil
}

func (t *Target) Lookup(ctx context.Context, parent gfid.GFID, name string) (gfid.GFID, target.Attr, bool, error) {
	if err := t.begin(ctx); err != nil {
		return gfid.Zero, target.Attr{}, false, err
	}
	defer t.end()
	n, ok, err := t.p.live.lookup(parent, name)
	if err != nil {
		return gfid.Zero, target.Attr{}, false, t.errorf("lookup: %w", err)
	}
	if !ok {
		return gfid.Zero, target.Attr{}, false, nil
	}
	return n.g, t.p.live.attr(n), true, nil
}

func (t *Target) Stat(ctx context.Context, g gfid.GFID) (target.Attr, error) {
	if err := t.begin(ctx); err != nil {
		return target.Attr{}, err
	}
	defer t.end()
	n, ok := t.p.live.byGFID(g)
	if !ok {
		return target.Attr{}, t.errorf("stat %s: %w", g, target.ErrNotExist)
	}
	return t.p.live.attr(n), nil
}

func (t *Target) ReadDir(ctx context.Context, dir gfid.GFID) ([]target.DirEntry, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	defer t.end()
	tr := t.p.live
	d, err := tr.dir(dir)
	if err != nil {
		return nil, t.errorf("readdir: %w", err)
	}
	var out []target.DirEntry
	for _, k := range tr.entries(d) {
		out = append(out, tr.dirEntry(k.name, k.n))
	}
	return out, nil
}

func (tr *tree) dirEntry(name string, n *inode) target.DirEntry {
	a := tr.attr(n)
	return target.DirEntry{Name: name, GFID: n.g, Mode: a.Type(), Attr: a}
}

func (t *Target) Xattrs(ctx context.Context, g gfid.GFID) (target.Xattrs, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	defer t.end()
	n, ok := t.p.live.byGFID(g)
	if !ok {
		return nil, t.errorf("xattrs %s: %w", g, target.ErrNotExist)
	}
	return cloneXattrs(n.xattrs), nil
}

// Where answers for directories only, as a mirror's index pointers do;
// the root and limbo have no parent.
func (t *Target) Where(ctx context.Context, g gfid.GFID) (gfid.GFID, string, error) {
	if err := t.begin(ctx); err != nil {
		return gfid.Zero, "", err
	}
	defer t.end()
	tr := t.p.live
	n, err := tr.dir(g)
	if err != nil {
		return gfid.Zero, "", t.errorf("where: %w", err)
	}
	if len(n.names) == 0 {
		return gfid.Zero, "", t.errorf("where %s: no parent: %w", g, target.ErrNotExist)
	}
	r := n.names[0]
	return tr.inodes[r.dir].g, r.name, nil
}

// List lists directory dir; an entry the index has lost (Unindex) is
// ErrIndexStale, as on a mirror whose pointer leads elsewhere.
func (t *Target) List(ctx context.Context, dir gfid.GFID, hashBelow int64) ([]target.FullEntry, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	defer t.end()
	tr := t.p.live
	d, err := tr.dir(dir)
	if err != nil {
		if tr.unindexed(dir) {
			return nil, t.errorf("list %s: %w", dir, target.ErrIndexStale)
		}
		return nil, t.errorf("list: %w", err)
	}
	var out []target.FullEntry
	for _, k := range tr.entries(d) {
		n, e := k.n, tr.fullEntry(k.name, k.n)
		if n.isReg() && int64(len(n.data)) < hashBelow {
			e.Hashed, e.Sum, e.N = true, contenthash.Bytes(n.data), int64(len(n.data))
		}
		out = append(out, e)
	}
	return out, nil
}

func (tr *tree) fullEntry(name string, n *inode) target.FullEntry {
	return target.FullEntry{DirEntry: tr.dirEntry(name, n), Xattrs: cloneXattrs(n.xattrs), Link: n.link}
}

func (t *Target) LookupFull(ctx context.Context, parent gfid.GFID, name string) (target.FullEntry, bool, error) {
	if err := t.begin(ctx); err != nil {
		return target.FullEntry{}, false, err
	}
	defer t.end()
	tr := t.p.live
	n, ok, err := tr.lookup(parent, name)
	if err != nil {
		return target.FullEntry{}, false, t.errorf("lookup: %w", err)
	}
	if !ok {
		return target.FullEntry{}, false, nil
	}
	return tr.fullEntry(name, n), true, nil
}

func (t *Target) Hash(ctx context.Context, g gfid.GFID, size int64) (contenthash.Sum, int64, error) {
	if err := t.begin(ctx); err != nil {
		return contenthash.Sum{}, 0, err
	}
	defer t.end()
	n, err := t.regular(g)
	if err != nil {
		return contenthash.Sum{}, 0, t.errorf("hash: %w", err)
	}
	return contenthash.Bytes(n.data), int64(len(n.data)), nil
}

func (t *Target) HashDir(ctx context.Context, dir gfid.GFID, reqs []target.HashReq) error {
	if err := t.begin(ctx); err != nil {
		return err
	}
	defer t.end()
	tr := t.p.live
	d, err := tr.dir(dir)
	if err != nil {
		return t.errorf("hash: %w", err)
	}
	for i := range reqs {
		r := &reqs[i]
		r.Sum, r.N, r.Err = contenthash.Sum{}, 0, nil
		n, ok := tr.child(d, r.Name)
		switch {
		case !ok:
			r.Err = t.errorf("hash %s: %w", tr.path(d, r.Name), target.ErrNotExist)
		case !n.isReg():
			r.Err = t.errorf("hash %s: %w", tr.path(d, r.Name), fmt.Errorf("not a regular file"))
		default:
			r.Sum, r.N = contenthash.Bytes(n.data), int64(len(n.data))
		}
	}
	return nil
}
