package replicator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/contenthash"
	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// DiffKind names what differs between a brick entry and its target copy.
type DiffKind string

const (
	DiffMissing  DiffKind = "missing"  // on the brick, not on the target
	DiffExtra    DiffKind = "extra"    // on the target, not on the brick
	DiffType     DiffKind = "type"     // file type
	DiffGFID     DiffKind = "gfid"     // same name, another inode identity
	DiffSize     DiffKind = "size"     // regular file size
	DiffMode     DiffKind = "mode"     // permission bits
	DiffOwner    DiffKind = "owner"    // uid or gid
	DiffMtime    DiffKind = "mtime"    // modification time
	DiffXattrs   DiffKind = "xattrs"   // user-visible extended attributes
	DiffSymlink  DiffKind = "symlink"  // symlink target
	DiffHardlink DiffKind = "hardlink" // a name not linked to the inode its gfid's other names share
	DiffContent  DiffKind = "content"  // same size, other bytes
	DiffChanged  DiffKind = "changed"  // changed on the brick during the walk, still different at the re-check
	DiffIndex    DiffKind = "index"    // the target's gfid index does not lead to this directory
)

// Difference is one difference between a brick and a target.
type Difference struct {
	Path   string   `json:"path"` // relative to the brick root; "." is the root
	GFID   string   `json:"gfid,omitempty"`
	Kind   DiffKind `json:"kind"`
	Brick  string   `json:"brick,omitempty"`  // the brick's value, for people
	Target string   `json:"target,omitempty"` // the target's value
	Parent string   `json:"parent,omitempty"` // gfid of the directory holding it (same on both sides)
}

// VerifyError is an entry that could not be compared.
type VerifyError struct {
	Path string `json:"path"`
	Err  string `json:"error"`
}

// VerifySummary counts what a walk saw.
type VerifySummary struct {
	Entries     int64              `json:"entries"`
	Files       int64              `json:"files"`
	BytesHashed int64              `json:"bytes_hashed"`
	Differences int64              `json:"differences"`
	ByKind      map[DiffKind]int64 `json:"by_kind"`
	Errors      int64              `json:"errors"`
}

// BrickRef names a brick for readers outside a mount.
type BrickRef struct {
	Root       string // absolute
	ID         string
	GFIDXattr  string
	XtimeXattr string
}

func (r BrickRef) tree() *brickTree {
	return &brickTree{newTree(r.Root, r.GFIDXattr, r.XtimeXattr)}
}

// VerifyOptions tunes a walk.
type VerifyOptions struct {
	// Checksum compares the content of every regular file of equal size;
	// without it content is hashed only when sizes match and mtimes do not.
	Checksum bool
	// Workers bounds the parallel directory walkers and the parallel
	// hashers (each); 0 means 2 per CPU, at least 4.
	Workers int
	// ChangedAfter: brick entries changed at or after it are in flux (the
	// live brick moves on while the walk runs). Their differences are
	// re-checked once at the end; what still differs then is reported as
	// DiffChanged. Zero means the start of the walk.
	ChangedAfter time.Time
	// OnDiff and OnError receive every difference and error, one call at a
	// time, as the walk finds them.
	OnDiff  func(Difference)
	OnError func(VerifyError)
}

// maxRecheck bounds the entries kept for the final re-check; past it,
// entries in flux are reported as changed at once (memory stays bounded
// on a brick that changes everywhere).
const maxRecheck = 10000

// Verifier walks a brick and a target side by side and reports every
// difference. Memory is bounded by the walkers' directory listings (one
// per level of the tree per walker), not by the size of the tree.
type Verifier struct {
	b     *brickTree
	t     target.Target
	opt   VerifyOptions
	after int64 // ChangedAfter, unix ns

	entries, files, bytes atomic.Int64

	mu      sync.Mutex // serializes the callbacks and guards sum, recheck
	sum     VerifySummary
	recheck []recheckItem

	sem    chan struct{} // walker tokens
	walkWG sync.WaitGroup
	hashes chan hashJob
	hashWG sync.WaitGroup
	ctx    context.Context
}

type recheckItem struct {
	rel    string
	parent gfid.GFID
	name   string
}

type hashJob struct {
	rel    string
	parent gfid.GFID
	bpath  string
	a      target.Attr
	g      gfid.GFID
	name   string
	diffs  []Difference // found before hashing, reported with the result
}

// inlineHash is the size below which a walker hashes a file itself:
// handing small files to the hashers costs more than hashing them.
const inlineHash = 1 << 20

// NewVerifier prepares a walk of brick against t (already attached).
func NewVerifier(brick BrickRef, t target.Target, opt VerifyOptions) *Verifier {
	if opt.Workers <= 0 {
		opt.Workers = max(4, 2*runtime.NumCPU())
	}
	return &Verifier{b: brick.tree(), t: t, opt: opt,
		sum: VerifySummary{ByKind: map[DiffKind]int64{}}}
}

// Progress returns the entries compared and the brick bytes hashed so far.
func (v *Verifier) Progress() (entries, bytes int64) { return v.entries.Load(), v.bytes.Load() }

// Run walks both trees. It fails only when the walk cannot start (or ctx
// is cancelled); differences and unreadable entries are reported through
// the callbacks and counted in the summary.
func (v *Verifier) Run(ctx context.Context) (VerifySummary, error) {
	start := time.Now()
	v.after = start.UnixNano()
	if !v.opt.ChangedAfter.IsZero() {
		v.after = v.opt.ChangedAfter.UnixNano()
	}
	v.ctx = ctx
	var rst unix.Stat_t
	if err := unix.Lstat(v.b.root, &rst); err != nil {
		return v.sum, fmt.Errorf("brick %s: %w", v.b.root, err)
	}
	ra, err := v.t.Stat(v.ctx, gfid.Root)
	if err != nil {
		return v.sum, fmt.Errorf("target %s: root: %w", v.t.Name(), err)
	}
	v.sem = make(chan struct{}, v.opt.Workers)
	v.hashes = make(chan hashJob, 2*v.opt.Workers)
	for range v.opt.Workers {
		v.hashWG.Add(1)
		go func() {
			defer v.hashWG.Done()
			for j := range v.hashes {
				v.hash(j)
			}
		}()
	}
	root, err := fullEntry(&v.b.tree, v.b.root, &rst)
	if err != nil {
		return v.sum, fmt.Errorf("brick %s: %w", v.b.root, err)
	}
	troot := target.FullEntry{DirEntry: target.DirEntry{GFID: gfid.Root, Mode: sIFDIR, Attr: ra}}
	if troot.Xattrs, err = v.t.Xattrs(v.ctx, gfid.Root); err != nil {
		return v.sum, fmt.Errorf("target %s: root: %w", v.t.Name(), err)
	}
	root.GFID = gfid.Root
	v.entries.Add(1)
	v.compare(entryPath{bdir: v.b.root, name: "."}, gfid.Zero, root, troot, nil)
	v.walkDir("", gfid.Zero, gfid.Root, v.b.root, root.Attr)
	v.walkWG.Wait()
	close(v.hashes)
	v.hashWG.Wait()
	if err := ctx.Err(); err != nil {
		return v.summary(), err
	}
	v.recheckAll()
	return v.summary(), ctx.Err()
}

func (v *Verifier) summary() VerifySummary {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.sum
	s.ByKind = maps(v.sum.ByKind)
	s.Entries, s.Files, s.BytesHashed = v.entries.Load(), v.files.Load(), v.bytes.Load()
	return s
}

func maps(m map[DiffKind]int64) map[DiffKind]int64 {
	out := make(map[DiffKind]int64, len(m))
	for k, n := range m {
		out[k] = n
	}
	return out
}

func (v *Verifier) emit(ds ...Difference) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, d := range ds {
		v.sum.Differences++
		v.sum.ByKind[d.Kind]++
		if v.opt.OnDiff != nil {
			v.opt.OnDiff(d)
		}
	}
}

func (v *Verifier) fail(rel string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.sum.Errors++
	if v.opt.OnError != nil {
		v.opt.OnError(VerifyError{Path: rel, Err: err.Error()})
	}
}

// inFlux queues parent/name for the final re-check; false when the queue
// is full (the caller then reports the entry as changed).
func (v *Verifier) inFlux(rel string, parent gfid.GFID) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.recheck) >= maxRecheck {
		return false
	}
	v.recheck = append(v.recheck, recheckItem{rel: rel, parent: parent, name: path.Base(rel)})
	return true
}

// report sends ds, or queues the entry for the re-check when the brick
// changed it during the walk.
func (v *Verifier) report(rel string, parent gfid.GFID, flux bool, ds []Difference) {
	if len(ds) == 0 {
		return
	}
	if flux && parent != gfid.Zero {
		if v.inFlux(rel, parent) {
			return
		}
		v.emit(Difference{Path: rel, GFID: ds[0].GFID, Kind: DiffChanged, Parent: parent.String(),
			Brick: "changed during verify"})
		return
	}
	v.emit(ds...)
}

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func byName(a, b target.FullEntry) int { return strings.Compare(a.Name, b.Name) }

// walkDir compares directory g (same gfid on both sides; bdp on the
// brick) entry by entry, in name order, and descends into the
// subdirectories both sides hold as the same inode.
func (v *Verifier) walkDir(rel string, parent, g gfid.GFID, bdp string, da target.Attr) {
	if v.ctx.Err() != nil {
		return
	}
	// With --checksum every regular file of equal size is hashed: the
	// small ones are hashed by the listings, while each is open anyway.
	var hashBelow int64
	if v.opt.Checksum {
		hashBelow = inlineHash
	}
	bfd, err := v.b.openDir(bdp)
	var bents []target.FullEntry
	if err == nil {
		bents, err = listFullFD(&v.b.tree, bfd, bdp, g == gfid.Root, hashBelow)
		if err != nil {
			unix.Close(bfd)
		}
	}
	if err != nil {
		if isNoEntry(err) && parent != gfid.Zero && !v.inFlux(rel, parent) {
			// Removed from the brick during the walk: compared again at the end.
			v.emit(Difference{Path: rel, GFID: g.String(), Kind: DiffChanged, Parent: parent.String(),
				Brick: "changed during verify"})
		}
		if !isNoEntry(err) {
			v.fail(relOrRoot(rel), fmt.Errorf("brick: %w", err))
		}
		return
	}
	tents, err := v.t.List(v.ctx, g, hashBelow)
	if err != nil {
		unix.Close(bfd)
		if errors.Is(err, target.ErrIndexStale) && parent != gfid.Zero {
			// Found by name, not by gfid: what is below it is compared
			// once repair has pointed the index at it again.
			v.report(rel, parent, da.Ctime >= v.after, []Difference{{Path: rel, GFID: g.String(), Kind: DiffIndex,
				Brick: "directory", Target: "index entry leads elsewhere", Parent: parent.String()}})
			return
		}
		v.fail(relOrRoot(rel), fmt.Errorf("target: %w", err))
		return
	}
	var small []hashJob // files to hash here, in one HashDir call
	slices.SortFunc(bents, byName)
	slices.SortFunc(tents, byName)
	dirFlux := da.Mtime >= v.after || da.Ctime >= v.after
	var subdirs []target.FullEntry
	i, j := 0, 0
	for i < len(bents) || j < len(tents) {
		switch {
		case j == len(tents) || i < len(bents) && bents[i].Name < tents[j].Name:
			e := &bents[i]
			i++
			v.entries.Add(1)
			r := joinRel(rel, e.Name)
			v.report(r, g, e.Attr.Ctime >= v.after || dirFlux, []Difference{{Path: r, GFID: gfidString(e.GFID),
				Kind: DiffMissing, Brick: typeName(e.Mode), Parent: g.String()}})
		case i == len(bents) || tents[j].Name < bents[i].Name:
			e := &tents[j]
			j++
			r := joinRel(rel, e.Name)
			v.report(r, g, dirFlux, []Difference{{Path: r, GFID: gfidString(e.GFID),
				Kind: DiffExtra, Target: typeName(e.Mode), Parent: g.String()}})
		default:
			be, te := &bents[i], &tents[j]
			i++
			j++
			v.entries.Add(1)
			if v.compare(entryPath{rel, bdp, be.Name}, g, *be, *te, &small) {
				subdirs = append(subdirs, *be)
			}
		}
	}
	bents, tents = nil, nil
	if len(small) > 0 {
		v.hashSmall(g, bfd, small)
	}
	unix.Close(bfd)
	for _, e := range subdirs {
		v.descend(joinRel(rel, e.Name), g, e.GFID, bdp+"/"+e.Name, e.Attr)
	}
}

func relOrRoot(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

// descend walks a subdirectory on an idle walker, or here when none is.
func (v *Verifier) descend(rel string, parent, g gfid.GFID, bdp string, a target.Attr) {
	select {
	case v.sem <- struct{}{}:
		v.walkWG.Add(1)
		go func() {
			defer func() {
				<-v.sem
				v.walkWG.Done()
			}()
			v.walkDir(rel, parent, g, bdp, a)
		}()
	default:
		v.walkDir(rel, parent, g, bdp, a)
	}
}

func gfidString(g gfid.GFID) string {
	if g == gfid.Zero {
		return ""
	}
	return g.String()
}

func typeName(mode uint32) string {
	switch mode & sIFMT {
	case sIFREG:
		return "file"
	case sIFDIR:
		return "directory"
	case sIFLNK:
		return "symlink"
	case unix.S_IFCHR:
		return "char device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("type %o", mode&sIFMT)
}

func fmtTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// compare reports the differences between brick entry be (at bpath) and
// target entry te, both named rel in directory parent. It returns true
// when both are the same directory, to be descended into.
func (v *Verifier) compare(p entryPath, parent gfid.GFID, be, te target.FullEntry, small *[]hashJob) bool {
	ds, hash := v.diffEntry(p, parent, be, te)
	if be.Hashed {
		v.bytes.Add(be.N)
	}
	if hash && be.Hashed && te.Hashed && be.HashErr == nil && te.HashErr == nil &&
		be.Sum == te.Sum && be.N == te.N && be.N == be.Attr.Size {
		hash = false // the listings' sums match
	}
	if hash {
		j := hashJob{rel: p.rel(), parent: parent, bpath: p.brick(), a: be.Attr, g: be.GFID, diffs: ds, name: be.Name}
		if be.Hashed && te.Hashed {
			// Different, or unreadable: hashed again on both sides, by
			// hash, which tells a file the live brick changed meanwhile
			// from a damaged copy, and reports what it cannot read.
			v.hash(j)
			return false
		}
		if be.Attr.Size < inlineHash && small != nil {
			*small = append(*small, j)
		} else {
			v.hashes <- j
		}
		return false
	}
	if len(ds) > 0 {
		v.report(p.rel(), parent, be.Attr.Ctime >= v.after, ds)
	}
	return be.Mode == sIFDIR && te.Mode == sIFDIR && be.GFID == te.GFID && be.GFID != gfid.Zero
}

// entryPath names an entry being compared: dir and name relative to the
// brick root, bdir the brick directory holding it. The strings are joined
// only for a report or a hash job; most entries need neither.
type entryPath struct {
	dir, bdir, name string
}

func (p entryPath) rel() string   { return joinRel(p.dir, p.name) }
func (p entryPath) brick() string { return p.bdir + "/" + p.name }

// diffEntry lists the differences of everything but content; hash tells
// that the content must be compared too.
func (v *Verifier) diffEntry(p entryPath, parent gfid.GFID, be, te target.FullEntry) (ds []Difference, hash bool) {
	g := be.GFID
	rel := ""
	d := func(k DiffKind, b, t string) {
		if rel == "" {
			rel = p.rel()
		}
		ds = append(ds, Difference{Path: rel, GFID: gfidString(g), Kind: k, Brick: b, Target: t, Parent: gfidString(parent)})
	}
	if be.Mode != te.Mode {
		d(DiffType, typeName(be.Mode), typeName(te.Mode))
		return ds, false
	}
	if be.GFID != te.GFID {
		d(DiffGFID, gfidString(be.GFID), gfidString(te.GFID))
		return ds, false
	}
	a, ta := be.Attr, te.Attr
	if a.UID != ta.UID || a.GID != ta.GID {
		d(DiffOwner, fmt.Sprintf("%d:%d", a.UID, a.GID), fmt.Sprintf("%d:%d", ta.UID, ta.GID))
	}
	if be.Mode != sIFLNK && a.Mode&0o7777 != ta.Mode&0o7777 {
		d(DiffMode, fmt.Sprintf("%04o", a.Mode&0o7777), fmt.Sprintf("%04o", ta.Mode&0o7777))
	}
	if a.Mtime != ta.Mtime {
		d(DiffMtime, fmtTime(a.Mtime), fmtTime(ta.Mtime))
	}
	if be.Mode == sIFREG {
		v.files.Add(1)
		if a.Size != ta.Size {
			d(DiffSize, fmt.Sprint(a.Size), fmt.Sprint(ta.Size))
		}
	}
	if be.Mode == sIFLNK && be.Link != te.Link {
		d(DiffSymlink, be.Link, te.Link)
	}
	if !xattrsEqual(be.Xattrs, te.Xattrs) {
		d(DiffXattrs, xattrKeys(be.Xattrs), xattrKeys(te.Xattrs))
	}
	if g == gfid.Zero {
		return ds, false // not indexed on either side: nothing more to reach it by
	}
	// Every name of a non-directory must be the inode its gfid's index
	// entry holds: hard links stay one inode, and the content read by
	// gfid is this name's.
	// The brick's count includes its index link, the target's does not
	// (the contract counts names). When the counts differ, the names that
	// are not the indexed inode are the broken ones.
	links := max(a.Nlink, 2) - 1
	if be.Mode != sIFDIR && ta.Nlink != a.Nlink-1 {
		ia, err := v.t.Stat(v.ctx, g)
		switch {
		case isNoEntry(err):
			d(DiffHardlink, fmt.Sprintf("%d links", links), "not indexed")
			return ds, false
		case err != nil:
			v.fail(p.rel(), fmt.Errorf("target: %w", err))
			return ds, false
		case ia.Ino != ta.Ino:
			d(DiffHardlink, fmt.Sprintf("%d links", links), "separate copy")
			return ds, false
		}
	}
	hash = be.Mode == sIFREG && a.Size == ta.Size && (v.opt.Checksum || a.Mtime != ta.Mtime)
	return ds, hash
}

func xattrKeys(x target.Xattrs) string {
	names := make([]string, 0, len(x))
	for k := range x {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// hashSmall hashes the small files of one directory: on the target in
// one HashDir call, on the brick through the listing's descriptor.
func (v *Verifier) hashSmall(dir gfid.GFID, bfd int, jobs []hashJob) {
	reqs := make([]target.HashReq, len(jobs))
	for i, j := range jobs {
		reqs[i] = target.HashReq{Name: j.name, Size: j.a.Size}
	}
	if err := v.targetHashDir(dir, reqs); err != nil {
		for i := range reqs {
			reqs[i].Err = err
		}
	}
	for i, j := range jobs {
		fd, err := unix.Openat(bfd, j.name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME|unix.O_NOFOLLOW, 0)
		if err == unix.EPERM {
			fd, err = unix.Openat(bfd, j.name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		}
		var bs contenthash.Sum
		var changed bool
		if err != nil {
			changed = err == unix.ENOENT || err == unix.ELOOP
			err = &fs.PathError{Op: "open", Path: j.bpath, Err: err}
		} else {
			bs, changed, err = v.hashBrickFD(fd, j.bpath, j.a)
			unix.Close(fd)
		}
		r := reqs[i]
		v.hashed(j, bs, changed, err, r.Sum, r.N, r.Err)
	}
}

// hash compares the content of a regular file on both sides. A brick file
// that changes while it is read is in flux, not corrupt.
func (v *Verifier) hash(j hashJob) {
	bs, changed, err := v.hashBrick(j.bpath, j.a)
	var ts contenthash.Sum
	var tn int64
	var terr error
	if err == nil {
		ts, tn, terr = v.targetHash(j.g, j.a.Size)
	}
	v.hashed(j, bs, changed, err, ts, tn, terr)
}

// hashed reports a hash job given both sides' results.
func (v *Verifier) hashed(j hashJob, bs contenthash.Sum, changed bool, err error, ts contenthash.Sum, tn int64, terr error) {
	ds := j.diffs
	flux := j.a.Ctime >= v.after
	if err != nil {
		if changed {
			v.report(j.rel, j.parent, true, append(ds, Difference{Path: j.rel, GFID: j.g.String(), Kind: DiffChanged}))
			return
		}
		v.fail(j.rel, fmt.Errorf("brick: %w", err))
		v.report(j.rel, j.parent, flux, ds)
		return
	}
	if terr != nil {
		v.fail(j.rel, fmt.Errorf("target: %w", terr))
		v.report(j.rel, j.parent, flux, ds)
		return
	}
	if bs != ts || tn != j.a.Size {
		ds = append(ds, Difference{Path: j.rel, GFID: j.g.String(), Kind: DiffContent,
			Brick: bs.String()[:16], Target: ts.String()[:16], Parent: j.parent.String()})
	}
	v.report(j.rel, j.parent, flux || changed, ds)
}

// hashBrick hashes the brick file at p, listed with attributes a; changed
// tells that it is no longer what was listed, or changed while read.
func (v *Verifier) hashBrick(p string, a target.Attr) (contenthash.Sum, bool, error) {
	var s contenthash.Sum
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME|unix.O_NOFOLLOW, 0)
	if err == unix.EPERM {
		fd, err = unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		if err == unix.ENOENT || err == unix.ELOOP {
			return s, true, errNoEntry
		}
		return s, false, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	return v.hashBrickFD(fd, p, a)
}

func (v *Verifier) hashBrickFD(fd int, p string, a target.Attr) (contenthash.Sum, bool, error) {
	s, n, err := contenthash.FD(fd, a.Size)
	v.bytes.Add(n)
	if err != nil {
		return s, false, &fs.PathError{Op: "read", Path: p, Err: err}
	}
	// One stat after the read: unchanged since the listing means what was
	// read is what was listed.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return s, false, err
	}
	changed := st.Ino != a.Ino || st.Mtim.Nano() != a.Mtime || st.Ctim.Nano() != a.Ctime || st.Size != a.Size || n != st.Size
	if changed {
		return s, true, errors.New("changed while read")
	}
	return s, false, nil
}

// recheckAll compares again the entries that changed on the brick during
// the walk: what matches now is fine, what still differs is reported as
// changed during verify.
func (v *Verifier) recheckAll() {
	v.mu.Lock()
	items := v.recheck
	v.recheck = nil
	v.mu.Unlock()
	for _, it := range items {
		if v.ctx.Err() != nil {
			return
		}
		ds, g := v.recheckOne(it)
		if len(ds) > 0 {
			v.emit(Difference{Path: it.rel, GFID: gfidString(g), Kind: DiffChanged, Parent: it.parent.String(),
				Brick: "changed during verify", Target: string(ds[0].Kind)})
		}
	}
}

func (v *Verifier) recheckOne(it recheckItem) ([]Difference, gfid.GFID) {
	changed := []Difference{{Kind: DiffChanged}}
	bdp, err := v.b.dirPath(it.parent)
	if err != nil {
		if isNoEntry(err) {
			return nil, gfid.Zero // its directory is gone: so is everything in it
		}
		return changed, gfid.Zero
	}
	bpath := bdp + "/" + it.name
	var bst unix.Stat_t
	bfound := unix.Lstat(bpath, &bst) == nil
	te, tfound, err := v.t.LookupFull(v.ctx, it.parent, it.name)
	if err != nil {
		return changed, gfid.Zero
	}
	switch {
	case !bfound && !tfound:
		return nil, gfid.Zero
	case !bfound:
		return []Difference{{Kind: DiffExtra}}, te.GFID
	}
	be, err := fullEntry(&v.b.tree, bpath, &bst)
	if err != nil {
		return changed, gfid.Zero
	}
	if !tfound {
		return []Difference{{Kind: DiffMissing}}, be.GFID
	}
	ds, hash := v.diffEntry(entryPath{name: it.rel}, it.parent, be, te)
	if be.Mode == sIFDIR && te.Mode == sIFDIR && be.GFID == te.GFID {
		if _, err := v.t.List(v.ctx, be.GFID, 0); errors.Is(err, target.ErrIndexStale) {
			ds = append(ds, Difference{Kind: DiffIndex})
		}
	}
	if hash {
		bs, _, err := v.hashBrick(bpath, be.Attr)
		ts, _, terr := v.targetHash(be.GFID, be.Attr.Size)
		if err != nil || terr != nil || bs != ts {
			ds = append(ds, Difference{Kind: DiffContent})
		}
	}
	return ds, be.GFID
}
