package memtarget

import (
	"bytes"
	"path"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/contenthash"
	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// SetDown makes every call but Name, Kind and Close fail with
// target.Down(target.Unavailable, err), as a target gone away does, until
// SetDown(nil).
func (t *Target) SetDown(err error) {
	t.p.mu.Lock()
	t.p.down = err
	t.p.mu.Unlock()
}

// FailEntry makes every call that would create, remove, move or change an
// entry named name fail with err, changing nothing: a per-entry failure
// (pass a target.Down error for one that takes the target down). A name
// without a slash matches that name in any directory, one with a slash
// the root-relative path. FailEntry(name, nil) clears it.
func (t *Target) FailEntry(name string, err error) {
	t.p.mu.Lock()
	if err == nil {
		delete(t.p.fail, name)
	} else {
		t.p.fail[name] = err
	}
	t.p.mu.Unlock()
}

// failure is the error FailEntry set for one of paths, if any.
func (p *place) failure(paths ...string) error {
	for _, q := range paths {
		if err, ok := p.fail[q]; ok {
			return err
		}
		if err, ok := p.fail[path.Base(q)]; ok {
			return err
		}
	}
	return nil
}

// Entry is one inode under one of its names, as Snapshot shows it.
type Entry struct {
	Type   uint32 // unix.S_IFDIR, S_IFREG, ...
	GFID   gfid.GFID
	Mode   uint32 // permission bits (07777)
	UID    uint32
	GID    uint32
	Size   int64
	Mtime  int64           // unix ns
	Sum    contenthash.Sum // regular files: HighwayHash-256 of the content
	Link   string          // symlinks
	Xattrs target.Xattrs
	Rdev   uint64
	Ino    uint64 // the same for every name of one inode
}

// Equal compares two entries, an xattr with an empty value equal to one
// with a nil value.
func (e Entry) Equal(o Entry) bool {
	if e.Type != o.Type || e.GFID != o.GFID || e.Mode != o.Mode || e.UID != o.UID || e.GID != o.GID ||
		e.Size != o.Size || e.Mtime != o.Mtime || e.Sum != o.Sum || e.Link != o.Link || e.Rdev != o.Rdev ||
		e.Ino != o.Ino || len(e.Xattrs) != len(o.Xattrs) {
		return false
	}
	for k, v := range e.Xattrs {
		w, ok := o.Xattrs[k]
		if !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// Snapshot maps every path of the tree to its entry: "." for the root,
// root-relative paths below it, and ".replfs/limbo/<name>" for what is in
// limbo.
func (t *Target) Snapshot() map[string]Entry {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	tr := t.p.live
	out := map[string]Entry{".": tr.entry(tr.inodes[rootIno])}
	var walk func(d *inode)
	walk = func(d *inode) {
		for _, k := range tr.entries(d) {
			out[tr.path(d, k.name)] = tr.entry(k.n)
			if k.n.isDir() {
				walk(k.n)
			}
		}
	}
	walk(tr.inodes[rootIno])
	walk(tr.inodes[limboIno])
	return out
}

func (tr *tree) entry(n *inode) Entry {
	a := tr.attr(n)
	e := Entry{Type: a.Type(), GFID: n.g, Mode: a.Mode & 0o7777, UID: a.UID, GID: a.GID, Size: a.Size,
		Mtime: a.Mtime, Link: n.link, Xattrs: cloneXattrs(n.xattrs), Rdev: n.rdev, Ino: n.ino}
	if e.Type == unix.S_IFREG {
		e.Sum = contenthash.Bytes(n.data)
	}
	return e
}

// Ops returns the changes applied so far, in order, one line each: "make
// d/x", "create d/f", "write d/f", "link a -> b", "unlink d/x", "rmdir d",
// "removeall d", "rename a -> b", "aside d/x", "emptylimbo N", "setmeta
// d/x", "relink d/x", "adopt d/x", "repoint d", "sync", "stime <RFC3339>".
// Refused calls are not in it.
func (t *Target) Ops() []string {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	return slices.Clone(t.p.ops)
}

// Stime returns the last stime set (zero if none).
func (t *Target) Stime() time.Time {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	return t.p.stime
}

// Synced returns how many times Sync succeeded.
func (t *Target) Synced() int {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	return t.p.synced
}

// Crash loses every change since the last Sync, as a power cut loses
// what a mirror had not synced (the brick id and stime are kept: a
// mirror writes them durably).
func (t *Target) Crash() {
	t.p.mu.Lock()
	t.p.live = t.p.durable.clone()
	t.p.mu.Unlock()
}

// Reopen returns a new handle on the same place, not yet opened: what a
// restarted daemon gets.
func (t *Target) Reopen() *Target { return &Target{name: t.name, p: t.p} }

// Unindex makes the gfid index lose g while its entries stay, as a crash
// between making an entry and indexing it does: Stat(g) is then
// ErrNotExist, List of directory g ErrIndexStale, until Adopt or Repoint.
func (t *Target) Unindex(g gfid.GFID) {
	t.p.mu.Lock()
	delete(t.p.live.index, g)
	t.p.mu.Unlock()
}

// BytesSource is a target.Source holding b.
func BytesSource(name string, b []byte) target.Source {
	return bytesSource{bytes.NewReader(b), name}
}

type bytesSource struct {
	*bytes.Reader
	name string
}

func (s bytesSource) Name() string { return s.name }
