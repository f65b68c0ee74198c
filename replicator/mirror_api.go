package replicator

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/contenthash"
	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// The mirror's side of the target contract. Each method is the one place
// where what went wrong is classified: an error that no retry of one
// entry can fix (the mirror's filesystem read-only, full, failing, gone)
// takes the whole target down (target.Down); anything else concerns the
// entry only. Only the mirror can tell them apart: ENOSPC from writing
// content means the disk is full, ENOSPC from setting an xattr means this
// one file's xattrs do not fit.

// down classifies err (see above).
func (m *Mirror) down(err error) error {
	if err == nil || target.IsDown(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return err
	}
	if errno == unix.EROFS {
		return target.Down(target.ReadOnly, err)
	}
	var xe *xattrError
	if errors.As(err, &xe) {
		return err
	}
	switch errno {
	case unix.ENOSPC, unix.EDQUOT:
		return target.Down(target.Full, err)
	case unix.EIO, unix.ENOTCONN, unix.ESTALE, unix.ENODEV, unix.ENXIO, unix.EACCES:
		return target.Down(target.Unavailable, err)
	}
	return err
}

// uncountIndex takes a listed non-directory's index link out of its link
// count, as the contract counts names only. (An unindexed copy that
// carries a gfid counts one less than it has: verify then finds it, as
// its count differs from the brick's.)
func uncountIndex(e *target.DirEntry) {
	if e.Mode != sIFDIR && e.GFID != gfid.Zero && e.Attr.Nlink > 0 {
		e.Attr.Nlink--
	}
}

// xattrError: an xattr of one entry could not be set (it does not fit,
// or the filesystem refuses that name): a failure of that entry only.
type xattrError struct {
	name string
	err  error
}

func (e *xattrError) Error() string { return "xattr " + e.name + ": " + e.err.Error() }
func (e *xattrError) Unwrap() error { return e.err }

func (m *Mirror) Where(ctx context.Context, g gfid.GFID) (gfid.GFID, string, error) {
	if err := ctx.Err(); err != nil {
		return gfid.Zero, "", err
	}
	r0, r1, err := m.doWhere(ctx, g)
	return r0, r1, m.down(err)
}

func (m *Mirror) Lookup(ctx context.Context, parent gfid.GFID, name string) (gfid.GFID, target.Attr, bool, error) {
	if err := ctx.Err(); err != nil {
		return gfid.Zero, target.Attr{}, false, err
	}
	r0, r1, r2, err := m.doLookup(ctx, parent, name)
	return r0, r1, r2, m.down(err)
}

func (m *Mirror) Stat(ctx context.Context, g gfid.GFID) (target.Attr, error) {
	if err := ctx.Err(); err != nil {
		return target.Attr{}, err
	}
	r0, err := m.doStat(ctx, g)
	return r0, m.down(err)
}

func (m *Mirror) ReadDir(ctx context.Context, dir gfid.GFID) ([]target.DirEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r0, err := m.doReadDir(ctx, dir)
	for i := range r0 {
		uncountIndex(&r0[i])
	}
	return r0, m.down(err)
}

func (m *Mirror) Xattrs(ctx context.Context, g gfid.GFID) (target.Xattrs, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r0, err := m.doXattrs(ctx, g)
	return r0, m.down(err)
}

func (m *Mirror) SetMeta(ctx context.Context, g gfid.GFID, a target.Attr, x target.Xattrs, what target.Meta) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.down(m.doSetMeta(ctx, g, a, x, what))
}

func (m *Mirror) Make(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID, a target.Attr, link string, x target.Xattrs) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.down(m.doMake(ctx, parent, name, g, a, link, x))
}

func (m *Mirror) Link(ctx context.Context, g, parent gfid.GFID, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.down(m.doLink(ctx, g, parent, name))
}

func (m *Mirror) Unlink(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.down(m.doUnlink(ctx, parent, name, g))
}

func (m *Mirror) Rmdir(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.down(m.doRmdir(ctx, parent, name, g))
}

func (m *Mirror) Rename(ctx context.Context, g, oldParent gfid.GFID, oldName string, newParent gfid.GFID, newName string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.down(m.doRename(ctx, g, oldParent, oldName, newParent, newName))
}

func (m *Mirror) Aside(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.down(m.doAside(ctx, parent, name, g))
}

func (m *Mirror) Adopt(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.down(m.doAdopt(ctx, parent, name, g))
}

func (m *Mirror) EmptyLimbo(ctx context.Context) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r0, err := m.doEmptyLimbo(ctx)
	return r0, m.down(err)
}

func (m *Mirror) RemoveAll(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.down(m.doRemoveAll(ctx, parent, name, g))
}

func (m *Mirror) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.down(m.doSync(ctx))
}

func (m *Mirror) SetStime(ctx context.Context, t time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.down(m.doSetStime(ctx, t))
}

func (m *Mirror) Parents(ctx context.Context, g gfid.GFID) ([]gfid.GFID, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r0, err := m.doParents(ctx, g)
	return r0, m.down(err)
}

func (m *Mirror) CreateFile(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID, src target.Source, a target.Attr, x target.Xattrs) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r0, err := m.doCreateFile(ctx, parent, name, g, src, a, x)
	return r0, m.down(err)
}

func (m *Mirror) WriteFile(ctx context.Context, g gfid.GFID, src target.Source, a target.Attr, x target.Xattrs) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r0, err := m.doWriteFile(ctx, g, src, a, x)
	return r0, m.down(err)
}

func (m *Mirror) List(ctx context.Context, dir gfid.GFID, hashBelow int64) ([]target.FullEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r0, err := m.doList(ctx, dir, hashBelow)
	for i := range r0 {
		uncountIndex(&r0[i].DirEntry)
	}
	return r0, m.down(err)
}

func (m *Mirror) Repoint(ctx context.Context, g, parent gfid.GFID, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.down(m.doRepoint(ctx, g, parent, name))
}

func (m *Mirror) LookupFull(ctx context.Context, parent gfid.GFID, name string) (target.FullEntry, bool, error) {
	if err := ctx.Err(); err != nil {
		return target.FullEntry{}, false, err
	}
	r0, r1, err := m.doLookupFull(ctx, parent, name)
	uncountIndex(&r0.DirEntry)
	return r0, r1, m.down(err)
}

func (m *Mirror) Hash(ctx context.Context, g gfid.GFID, size int64) (contenthash.Sum, int64, error) {
	if err := ctx.Err(); err != nil {
		return contenthash.Sum{}, 0, err
	}
	r0, r1, err := m.doHash(ctx, g, size)
	return r0, r1, m.down(err)
}

func (m *Mirror) HashDir(ctx context.Context, dir gfid.GFID, reqs []target.HashReq) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.down(m.doHashDir(ctx, dir, reqs))
}

func (m *Mirror) Relink(ctx context.Context, g, parent gfid.GFID, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.down(m.doRelink(ctx, g, parent, name))
}
