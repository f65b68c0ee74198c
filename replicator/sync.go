package replicator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
	"github.com/replfs/replfs/journal"
)

// errTarget marks an error of the target as a whole (gone, read-only,
// full, failing I/O): the batch stops and is retried later.
type targetError struct{ err error }

func (e *targetError) Error() string { return e.err.Error() }
func (e *targetError) Unwrap() error { return e.err }

// classify marks errors that end the batch: a target down as a whole (as
// the target says, target.Down), or the batch cancelled (the daemon
// stops). Any other error concerns one entry only.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var te *targetError
	if errors.As(err, &te) {
		return err
	}
	if target.IsDown(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &targetError{err}
	}
	return err
}

// counters shared by a worker's syncers.
type counters struct {
	bytes, files, failures atomic.Uint64
}

// syncer makes one target converge to the brick for a set of names and
// inodes: the work of one batch (or of one hybrid crawl). The brick is the
// truth: every decision reads its current state, so records of operations
// that failed or were overtaken by later ones are harmless, and replaying
// a batch twice changes nothing the second time.
type syncer struct {
	// ctx is the batch's (or crawl's): a syncer lives for one of them.
	ctx  context.Context
	b    *brickTree
	t    target.Target
	log  *zap.Logger
	c    *counters
	jobs int

	ignoreDeletes bool
	onFail        func(what string, g gfid.GFID, where string, err error) // besides the log

	data     map[gfid.GFID]struct{}
	meta     map[gfid.GFID]struct{}
	dirMeta  map[gfid.GFID]struct{} // directories whose attributes (times) are set last
	walk     []gfid.GFID            // directories to compare whole
	walked   map[gfid.GFID]struct{}
	made     map[gfid.GFID]struct{} // directories made by an MKDIR of this batch
	hints    map[gfid.GFID]nameRef  // rename destinations named in this batch
	pending  map[gfid.GFID]struct{} // files being created by the pool
	deferred []nameRef              // names to converge after the pool

	known map[gfid.GFID]struct{} // directories known to exist on the target
	bdirs map[gfid.GFID]string   // brick paths of directories listed by this pass

	pool     *pool
	poolMu   sync.Mutex // guards deferred while the pool runs
	creating bool       // create new files with content through the pool (hybrid)
	list     *lister    // lists the brick ahead of a full hybrid crawl
	// replay: the batch replays records written before the worker started
	// (a restart): the last batch before it may have stopped inside a
	// content update, between renaming over a name and putting back its
	// directory's times, so the directories of its files get their
	// attributes compared too.
	replay bool
}

func newSyncer(ctx context.Context, b *brickTree, t target.Target, log *zap.Logger, c *counters, jobs int, ignoreDeletes bool) *syncer {
	return &syncer{ctx: ctx, b: b, t: t, log: log, c: c, jobs: max(jobs, 1), ignoreDeletes: ignoreDeletes,
		data: map[gfid.GFID]struct{}{}, meta: map[gfid.GFID]struct{}{}, dirMeta: map[gfid.GFID]struct{}{},
		walked: map[gfid.GFID]struct{}{}, made: map[gfid.GFID]struct{}{}, hints: map[gfid.GFID]nameRef{},
		pending: map[gfid.GFID]struct{}{}, known: map[gfid.GFID]struct{}{},
		bdirs: map[gfid.GFID]string{}}
}

// fail counts an entry that could not be applied, with its gfid and path.
func (s *syncer) fail(what string, g gfid.GFID, where string, err error) {
	s.c.failures.Add(1)
	if s.onFail != nil {
		s.onFail(what, g, where, err)
	}
	s.log.Warn("replication failed", zap.String("target", s.t.Name()), zap.String("op", what),
		zap.Stringer("gfid", g), zap.String("path", where), zap.Error(err))
}

// retry runs op up to three times; a target-wide error ends the batch.
func (s *syncer) retry(what string, g gfid.GFID, where string, op func() error) error {
	var err error
	for try, unstable := 0, 0; try < 3; {
		if err = classify(op()); err == nil {
			return nil
		}
		var te *targetError
		if errors.As(err, &te) {
			return err
		}
		if errors.Is(err, errUnstable) && unstable < 20 {
			// A rename on the brick is between its two steps: wait for
			// it; this does not count as a failed try.
			unstable++
			time.Sleep(time.Duration(unstable) * 10 * time.Millisecond)
			continue
		}
		try++
	}
	s.fail(what, g, where, err)
	return nil
}

// applyRecords runs a batch: entries in journal order, then meta, then
// data with parallel transfers, then directory attributes.
func (s *syncer) applyRecords(recs []journal.Record) error {
	type pair struct {
		p gfid.GFID
		n string
	}
	var order []pair
	seen := map[pair]struct{}{}
	add := func(p gfid.GFID, n string) {
		k := pair{p, n}
		if _, ok := seen[k]; !ok {
			seen[k] = struct{}{}
			order = append(order, k)
		}
	}
	for i := range recs {
		r := &recs[i]
		switch r.Op.Kind() {
		case journal.KindEntry:
			add(r.Parent, r.Name)
			s.dirMeta[r.Parent] = struct{}{}
			switch r.Op {
			case journal.OpRename:
				add(r.Parent2, r.Name2)
				s.dirMeta[r.Parent2] = struct{}{}
				s.hints[r.GFID] = nameRef{r.Parent2, r.Name2}
			case journal.OpMkdir:
				s.made[r.GFID] = struct{}{}
			case journal.OpCreate:
				s.data[r.GFID] = struct{}{}
			}
			s.meta[r.GFID] = struct{}{}
		case journal.KindData:
			s.data[r.GFID] = struct{}{}
		case journal.KindMeta:
			s.meta[r.GFID] = struct{}{}
		}
	}
	for _, k := range order {
		if err := s.retry("entry", gfid.Zero, k.p.String()+"/"+k.n, func() error { return s.converge(k.p, k.n) }); err != nil {
			return err
		}
	}
	return s.finish()
}

// finish runs what the entry pass left: whole-directory compares, meta,
// data, directory attributes and limbo.
func (s *syncer) finish() error {
	for len(s.walk) > 0 {
		g := s.walk[0]
		s.walk = s.walk[1:]
		if err := s.syncDir(g, 0, false); err != nil {
			return err
		}
	}
	for g := range s.meta {
		if _, ok := s.data[g]; ok {
			continue // set with the data
		}
		if err := s.retry("meta", g, "", func() error { return s.syncMeta(g) }); err != nil {
			return err
		}
	}
	if s.replay {
		for g := range s.data {
			ps, err := s.parents(g)
			if err != nil {
				return classify(err)
			}
			for _, p := range ps {
				s.dirMeta[p] = struct{}{}
			}
		}
	}
	for g := range s.data {
		s.submit(func() error {
			return s.retry("data", g, "", func() error { return s.syncData(g) })
		})
	}
	if err := s.drain(); err != nil {
		return err
	}
	for _, r := range s.deferred {
		if err := s.retry("entry", gfid.Zero, r.name, func() error { return s.converge(r.parent, r.name) }); err != nil {
			return err
		}
	}
	s.deferred = nil
	for g := range s.dirMeta {
		if err := s.retry("meta", g, "", func() error { return s.syncMeta(g) }); err != nil {
			return err
		}
	}
	if n, err := s.t.EmptyLimbo(s.ctx); err != nil {
		return classify(err)
	} else if n > 0 {
		s.log.Debug("limbo emptied", zap.String("target", s.t.Name()), zap.Int("entries", n))
	}
	return nil
}

// submit runs job on the pool of sync-jobs goroutines.
func (s *syncer) submit(job func() error) {
	if s.pool == nil {
		s.pool = newPool(s.jobs)
	}
	s.pool.submit(job)
}

// submitRead runs job on the pool with the file open returns, after a
// read-ahead of it.
func (s *syncer) submitRead(open func() (srcFile, target.Attr, error), job func(srcFile, target.Attr, error) error) {
	if s.pool == nil {
		s.pool = newPool(s.jobs)
	}
	s.pool.submitRead(open, job)
}

// drain waits for the pool and returns its first target-wide error.
func (s *syncer) drain() error {
	var err error
	if s.pool != nil {
		err = s.pool.wait()
		s.pool = nil
	}
	clear(s.pending)
	return err
}

// converge makes the target's parent/name hold what the brick's does.
func (s *syncer) converge(parent gfid.GFID, name string) error {
	bg, bst, bfound, err := s.b.lookup(parent, name)
	if err != nil {
		return err
	}
	if bfound && bg == gfid.Zero {
		return nil // made behind the mount's back; the next reconcile names it
	}
	tg, ta, tfound, err := s.t.Lookup(s.ctx, parent, name)
	if err != nil {
		return err
	}
	if tfound && bfound && tg == bg && ta.Type() == bst.Mode&sIFMT {
		if _, err := s.t.Stat(s.ctx, bg); isNoEntry(err) {
			// Named but not indexed: a crash between making an entry and
			// indexing it. Index it, and check its content.
			if err := s.adopt(parent, name, bg); err != nil {
				return err
			}
			s.data[bg] = struct{}{}
			s.meta[bg] = struct{}{}
		}
		return nil
	}
	if tfound {
		if !bfound && s.ignoreDeletes {
			return nil
		}
		if err := s.evict(parent, name, tg, ta); err != nil {
			return err
		}
	}
	if !bfound {
		return nil
	}
	return s.place(parent, name, bg, target.AttrOf(&bst))
}

// evict clears parent/name on the target, which holds g: moved to where
// the brick has g now if it can be, aside if the brick still has g, else
// removed with its subtree.
func (s *syncer) evict(parent gfid.GFID, name string, g gfid.GFID, ta target.Attr) error {
	s.dirMeta[parent] = struct{}{}
	delete(s.known, g)
	live := false
	if g != gfid.Zero {
		var err error
		if live, err = s.b.hasStable(g); err != nil {
			return err
		}
	}
	if live {
		var dest nameRef
		ok := false
		if ta.Type() == sIFDIR {
			if p, n, err := s.b.dirParent(g); err == nil {
				dest, ok = nameRef{p, n}, true
			}
		} else if h, found := s.hints[g]; found {
			if bg, _, bfound, _ := s.b.lookup(h.parent, h.name); bfound && bg == g {
				dest, ok = h, true
			}
		}
		if ok && dest != (nameRef{parent, name}) {
			if _, err := s.t.Stat(s.ctx, dest.parent); err == nil {
				if _, _, taken, err := s.t.Lookup(s.ctx, dest.parent, dest.name); err == nil && !taken {
					if err := s.t.Rename(s.ctx, g, parent, name, dest.parent, dest.name); err == nil {
						s.dirMeta[dest.parent] = struct{}{}
						return nil
					}
				}
			}
		}
		return s.t.Aside(s.ctx, parent, name, g)
	}
	return s.remove(parent, name, g, ta)
}

// remove deletes parent/name (holding g, which the brick no longer has)
// from the target; children the brick still has are set aside, not lost.
func (s *syncer) remove(parent gfid.GFID, name string, g gfid.GFID, ta target.Attr) error {
	if ta.Type() != sIFDIR {
		return s.t.Unlink(s.ctx, parent, name, g)
	}
	if g == gfid.Zero {
		return s.removeAll(parent, name, g) // made by hand on the target
	}
	ents, err := s.t.ReadDir(s.ctx, g)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.GFID == gfid.Zero && e.Mode == sIFDIR {
			if err := s.removeAll(g, e.Name, e.GFID); err != nil {
				return err
			}
			continue
		}
		live := false
		if e.GFID != gfid.Zero {
			if live, err = s.b.hasStable(e.GFID); err != nil {
				return err
			}
		}
		if live {
			if err := s.t.Aside(s.ctx, g, e.Name, e.GFID); err != nil {
				return err
			}
			continue
		}
		if err := s.remove(g, e.Name, e.GFID, target.Attr{Mode: e.Mode}); err != nil {
			return err
		}
	}
	return s.t.Rmdir(s.ctx, parent, name, g)
}

// ensureDir makes sure directory g exists on the target, making its
// missing ancestors from the brick.
func (s *syncer) ensureDir(g gfid.GFID) error {
	if g == gfid.Root {
		return nil
	}
	if _, ok := s.known[g]; ok {
		return nil
	}
	if a, err := s.t.Stat(s.ctx, g); err == nil && a.Type() == sIFDIR {
		s.known[g] = struct{}{}
		return nil
	}
	p, n, err := s.b.dirParent(g)
	if err != nil {
		return fmt.Errorf("parent %s is not on the brick: %w", g, err)
	}
	if err := s.ensureDir(p); err != nil {
		return err
	}
	return s.converge(p, n)
}

// place puts brick inode g (attributes a) at parent/name on the target.
func (s *syncer) place(parent gfid.GFID, name string, g gfid.GFID, a target.Attr) error {
	if err := s.ensureDir(parent); err != nil {
		return err
	}
	s.dirMeta[parent] = struct{}{}
	if _, busy := s.pending[g]; busy {
		s.deferred = append(s.deferred, nameRef{parent, name})
		return nil
	}
	if ta, err := s.t.Stat(s.ctx, g); err == nil {
		if ta.Type() == sIFDIR {
			op, on, err := s.t.Where(s.ctx, g)
			if err != nil {
				return err
			}
			return s.t.Rename(s.ctx, g, op, on, parent, name)
		}
		return s.link(g, parent, name)
	} else if !isNoEntry(err) {
		return err
	}
	switch a.Type() {
	case sIFREG:
		if s.creating {
			bp := ""
			if d, ok := s.bdirs[parent]; ok {
				bp = d + "/" + name
			}
			open := func() (srcFile, target.Attr, error) {
				if bp != "" {
					return s.b.openAt(bp, g, a)
				}
				return s.b.openIndex(g)
			}
			s.pending[g] = struct{}{}
			s.submitRead(open, func(f srcFile, fa target.Attr, err error) error {
				defer func() { f.close() }()
				return s.retry("create", g, name, func() error {
					if err != nil || f.fd < 0 {
						if f, fa, err = open(); err != nil {
							if isNoEntry(err) {
								return nil
							}
							return err
						}
					}
					return s.createFile(parent, name, g, f, fa)
				})
			})
			return nil
		}
		s.data[g] = struct{}{}
		return s.t.Make(s.ctx, parent, name, g, a, "", nil)
	case sIFDIR:
		bp := ""
		if d, ok := s.bdirs[parent]; ok {
			bp = s.b.at(d+"/"+name, g)
		}
		if bp == "" {
			// Checked to hold g: mid-rename of an ancestor it does not
			// (errUnstable, which retry waits out).
			var err error
			if bp, err = s.b.stableDirPath(g); err != nil {
				return err
			}
		}
		x, err := readXattrs(bp)
		if err != nil {
			return err
		}
		if err := s.t.Make(s.ctx, parent, name, g, a, "", x); err != nil {
			return err
		}
		s.known[g] = struct{}{}
		s.dirMeta[g] = struct{}{}
		if _, ok := s.made[g]; !ok {
			s.walk = append(s.walk, g)
		}
		return nil
	default:
		bp, _, err := s.b.stat(g)
		if err != nil {
			return err
		}
		var link string
		if a.Type() == sIFLNK {
			if link, err = os.Readlink(bp); err != nil {
				return err
			}
		}
		x, err := readXattrs(bp)
		if err != nil {
			return err
		}
		if err := s.t.Make(s.ctx, parent, name, g, a, link, x); err != nil {
			return err
		}
		return s.t.SetMeta(s.ctx, g, a, x, target.MetaTimes)
	}
}

// createFile makes parent/name on the target as regular file g, from f
// (open on the brick, with attributes a).
func (s *syncer) createFile(parent gfid.GFID, name string, g gfid.GFID, f srcFile, a target.Attr) error {
	x, err := fdXattrs(f.fd, "", f.name)
	if err != nil {
		return err
	}
	src := target.FileSource{Fd: f.fd, Path: f.name, Len: a.Size}
	n, err := s.t.CreateFile(s.ctx, parent, name, g, src, a, x)
	if errors.Is(err, fs.ErrExist) {
		// Taken meanwhile: converge the name again after the pool.
		s.poolMu.Lock()
		s.deferred = append(s.deferred, nameRef{parent, name})
		s.poolMu.Unlock()
		return nil
	}
	if err == nil {
		s.c.bytes.Add(uint64(n))
		s.c.files.Add(1)
	}
	return err
}

// syncData brings g's content to the target unless it already has it.
func (s *syncer) syncData(g gfid.GFID) error {
	ta, err := s.t.Stat(s.ctx, g)
	if err != nil {
		if isNoEntry(err) {
			return nil // not on the target (yet): its entry decides
		}
		return err
	}
	if ta.Type() != sIFREG {
		return s.syncMeta(g)
	}
	f, a, err := s.b.open(g)
	if err != nil {
		if isNoEntry(err) {
			return nil
		}
		return err
	}
	defer f.Close()
	if a.Size == ta.Size && a.Mtime == ta.Mtime {
		return s.syncMeta(g)
	}
	x, err := fdXattrs(int(f.Fd()), "", f.Name())
	if err != nil {
		return err
	}
	n, err := s.t.WriteFile(s.ctx, g, target.FileSource{Fd: int(f.Fd()), Path: f.Name(), Len: a.Size}, a, x)
	if err == nil {
		s.c.bytes.Add(uint64(n))
		s.c.files.Add(1)
	}
	return err
}

// syncMeta copies g's owner, mode, xattrs and times where they differ.
func (s *syncer) syncMeta(g gfid.GFID) error {
	bp, a, err := s.brickStat(g)
	if err != nil {
		if isNoEntry(err) {
			// A directory whose path leads nowhere while its index entry
			// is there is being renamed on the brick (errUnstable, which
			// retry waits out), not gone: skipping it would leave the
			// target's times as the entries made in it set them.
			_, err = s.b.hasStable(g)
		}
		return err
	}
	ta, err := s.t.Stat(s.ctx, g)
	if err != nil {
		if isNoEntry(err) {
			return nil
		}
		return err
	}
	if ta.Type() != a.Type() {
		return nil
	}
	var what target.Meta
	if ta.UID != a.UID || ta.GID != a.GID {
		what |= target.MetaOwner | target.MetaMode // chown may clear set-id bits
	}
	if ta.Mode&0o7777 != a.Mode&0o7777 {
		what |= target.MetaMode
	}
	if ta.Mtime != a.Mtime {
		what |= target.MetaTimes
	}
	bx, err := readXattrs(bp)
	if err != nil {
		return err
	}
	tx, err := s.t.Xattrs(s.ctx, g)
	if err != nil {
		return err
	}
	if !xattrsEqual(bx, tx) {
		what |= target.MetaXattrs | target.MetaTimes
	}
	if what == 0 {
		return nil
	}
	return s.t.SetMeta(s.ctx, g, a, bx, what|target.MetaTimes)
}

// brickStat is b.stat, through the path of a directory this pass listed
// while it still holds g (the index pointers are not read).
func (s *syncer) brickStat(g gfid.GFID) (string, target.Attr, error) {
	if d, ok := s.bdirs[g]; ok {
		var st unix.Stat_t
		if unix.Lstat(d, &st) == nil && st.Mode&sIFMT == sIFDIR && s.b.at(d, g) == d {
			return d, target.AttrOf(&st), nil
		}
	}
	return s.b.stat(g)
}

func xattrsEqual(a, b target.Xattrs) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || string(v) != string(w) {
			return false
		}
	}
	return true
}

// syncDir compares directory g's listing on both sides and converges every
// name. deep descends into every subdirectory whose brick xtime is newer
// than since (all of them when since is 0); otherwise only into
// directories made by this pass.
func (s *syncer) syncDir(g gfid.GFID, since int64, deep bool) error {
	return s.syncDirAt(g, "", since, deep)
}

// syncDirAt is syncDir for a directory a walk found at brick path hint
// (none when ""): when it still holds g, the index is not read.
func (s *syncer) syncDirAt(g gfid.GFID, hint string, since int64, deep bool) error {
	if _, ok := s.walked[g]; ok {
		return nil
	}
	s.walked[g] = struct{}{}
	var bents []target.DirEntry
	bdp := ""
	if s.list != nil {
		if ents, ok := s.list.next(hint, g); ok {
			bents, bdp = ents, hint
		} else {
			s.list.close()
			s.list = nil
		}
	}
	if bdp == "" {
		bdp = s.b.at(hint, g)
	}
	if bdp == "" {
		err := s.retry("listing", g, "", func() error {
			var err error
			bdp, err = s.b.stableDirPath(g)
			if isNoEntry(err) {
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	if bdp == "" {
		return nil // gone from the brick
	}
	if bents == nil {
		var err error
		if bents, err = readDir(&s.b.tree, bdp, g == gfid.Root); err != nil {
			if isNoEntry(err) {
				return nil
			}
			return err
		}
	}
	s.bdirs[g] = bdp
	tents, err := s.t.ReadDir(s.ctx, g)
	if err != nil && !isNoEntry(err) {
		return err
	}
	s.known[g] = struct{}{}
	onTarget := make(map[string]target.DirEntry, len(tents))
	for _, e := range tents {
		onTarget[e.Name] = e
	}
	names := make(map[string]struct{}, len(bents)+len(tents))
	for _, e := range bents {
		names[e.Name] = struct{}{}
		te, found := onTarget[e.Name]
		var err error
		switch {
		case e.GFID == gfid.Zero:
			continue // made behind the mount's back; the next reconcile names it
		case found && te.GFID == e.GFID && te.Mode == e.Mode:
			if e.Mode == sIFDIR {
				s.known[e.GFID] = struct{}{}
			}
		case !found:
			err = s.retry("entry", e.GFID, e.Name, func() error { return s.place(g, e.Name, e.GFID, e.Attr) })
		default:
			err = s.retry("entry", e.GFID, e.Name, func() error { return s.converge(g, e.Name) })
		}
		if err != nil {
			return err
		}
		if e.Mode != sIFDIR {
			if s.creating {
				if _, busy := s.pending[e.GFID]; busy {
					continue
				}
			}
			s.data[e.GFID] = struct{}{}
		}
	}
	for _, e := range tents {
		if _, ok := names[e.Name]; ok {
			continue
		}
		if err := s.retry("entry", e.GFID, e.Name, func() error { return s.converge(g, e.Name) }); err != nil {
			return err
		}
	}
	s.dirMeta[g] = struct{}{}
	if !deep {
		return nil
	}
	for _, e := range bents {
		if e.Mode != sIFDIR || e.GFID == gfid.Zero {
			continue
		}
		hint := bdp + "/" + e.Name
		if since > 0 {
			dp := s.b.at(hint, e.GFID)
			if dp == "" {
				dp, _ = s.b.dirPath(e.GFID)
			}
			if dp != "" {
				if xt, ok := s.b.xtimeOf(dp); ok && xt <= since {
					continue // nothing changed below since the target's stime
				}
			}
		}
		if err := s.syncDirAt(e.GFID, hint, since, true); err != nil {
			return err
		}
	}
	return nil
}

// hybrid walks the whole brick (pruned by xtime when since > 0) and
// converges the target to it.
func (s *syncer) hybrid(since int64) error {
	s.creating = true
	if since == 0 {
		s.list = s.b.startLister()
	}
	stopFlush := s.flushWhileCopying()
	err := s.syncDirAt(gfid.Root, s.b.root, since, true)
	if s.list != nil {
		s.list.close()
		s.list = nil
	}
	if err != nil {
		s.drain()
		stopFlush()
		return err
	}
	err = s.drain()
	stopFlush()
	if err != nil {
		return err
	}
	s.creating = false
	return s.finish()
}

// flushWhileCopying makes the target write what a crawl copied while it
// copies more, so that the sync ending the crawl (which the cursor waits
// for) has only the tail left to write. It returns the function that
// stops it.
func (s *syncer) flushWhileCopying() func() {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				s.t.Sync(s.ctx)
			}
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}

// flushEvery is how often a crawl has the target write what it copied.
const flushEvery = 500 * time.Millisecond
