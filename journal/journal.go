package journal

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
)

// ErrClosed is returned by a Journal or Reader used after Close.
var ErrClosed = errors.New("journal closed")

// Options configure a Journal.
type Options struct {
	Dir      string        // e.g. BRICK/.replfs/journal; created if missing (0700)
	Rollover time.Duration // segment window; 0 means 1s
	// Retention: closed segments are deleted once every registered
	// consumer has passed them and they were sealed longer ago than this;
	// 0 means 24h. With no consumer registered only the age rule applies.
	Retention time.Duration
	Logger    *zap.Logger      // nil means zap.NewNop()
	Now       func() time.Time // record times and seal times; nil means time.Now
	// OnRollover, if set, is called from inside Rollover while the journal
	// is quiesced (no Enter/Exit section in flight) and after the new
	// segment has been opened, so records it Appends land in the new
	// segment. It must be quick and must not call Enter, Exit, Rollover or
	// Sync (it may call Append).
	OnRollover func()
}

const (
	defaultRollover  = time.Second
	defaultRetention = 24 * time.Hour
)

// Journal is the writer side: one per brick, shared by every operation of
// the mount.
type Journal struct {
	dir       string
	every     time.Duration
	retention time.Duration
	log       *zap.Logger
	now       func() time.Time
	onRoll    func()

	// gate is held shared by every operation section and exclusively by
	// Rollover and Close.
	gate sync.RWMutex

	mu      sync.Mutex // guards the active segment and everything below
	closed  bool
	f       *os.File // nil once closed or broken
	name    string   // active segment file name
	first   uint64   // seq the active segment starts at
	off     int64    // end of the last written frame
	records int      // records written to the active segment
	buf     []byte   // reused frame buffer
	seen    map[coalesceKey]struct{}
	err     error // sticky: the journal can no longer be trusted
	lastSeq atomic.Uint64

	cmu       sync.Mutex // guards consumers and consumers.json
	consumers map[string]uint64

	rmu sync.Mutex // serializes retention passes

	sealedMu sync.Mutex
	sealed   chan struct{} // closed and replaced at every seal

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// coalesceKey identifies D and M records that say the same thing within
// one segment: the replicator copies current state, not each change. The
// SETATTR mask is part of the key so that a dump still shows which kinds of
// attribute changed (at most four records per gfid and segment).
type coalesceKey struct {
	op    Op
	gfid  gfid.GFID
	xattr string
	mask  uint32
}

// Open recovers the journal in opts.Dir and opens a new active segment.
// Every closed segment is validated; an open segment left by a crash has
// its torn tail cut (and kept beside it) and is sealed. It does not lock
// against other processes.
func Open(opts Options) (*Journal, error) {
	if opts.Dir == "" {
		return nil, errors.New("open journal: no directory")
	}
	if opts.Rollover < 0 || opts.Retention < 0 {
		return nil, fmt.Errorf("open journal: negative rollover %v or retention %v", opts.Rollover, opts.Retention)
	}
	j := &Journal{
		dir:       opts.Dir,
		every:     cmp.Or(opts.Rollover, defaultRollover),
		retention: cmp.Or(opts.Retention, defaultRetention),
		log:       opts.Logger,
		now:       opts.Now,
		onRoll:    opts.OnRollover,
		buf:       make([]byte, 0, 512),
		seen:      make(map[coalesceKey]struct{}),
		sealed:    make(chan struct{}),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	if j.log == nil {
		j.log = zap.NewNop()
	}
	if j.now == nil {
		j.now = time.Now
	}
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	last, err := recoverDir(j.dir, j.log, j.now())
	if err != nil {
		return nil, fmt.Errorf("open journal %s: %w", j.dir, err)
	}
	if j.consumers, err = loadConsumers(j.dir); err != nil {
		return nil, fmt.Errorf("open journal %s: %w", j.dir, err)
	}
	j.lastSeq.Store(last)
	if err := j.openActive(last+1, true); err != nil {
		return nil, fmt.Errorf("open journal %s: %w", j.dir, err)
	}
	if err := fsyncDir(j.dir); err != nil {
		j.f.Close()
		return nil, fmt.Errorf("open journal: %w", err)
	}
	if err := j.retain(); err != nil {
		j.log.Warn("journal retention failed", zap.Error(err))
	}
	j.log.Info("journal opened", zap.String("dir", j.dir), zap.Uint64("last_seq", last),
		zap.Duration("rollover", j.every), zap.Duration("retention", j.retention))
	go j.run()
	return j, nil
}

// openActive creates the active segment for records starting at first;
// reuse allows an existing (empty) one, as recovery leaves it. The caller
// fsyncs the directory.
func (j *Journal) openActive(first uint64, reuse bool) error {
	name := openName(first)
	flags := os.O_RDWR | os.O_CREATE | os.O_EXCL
	if reuse {
		flags = os.O_RDWR | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(segPath(j.dir, name), flags, 0o600)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	h := segHeader()
	if _, err := f.WriteAt(h[:], 0); err != nil {
		f.Close()
		return fmt.Errorf("write segment header %s: %w", name, err)
	}
	j.f, j.name, j.first, j.off, j.records = f, name, first, headerSize, 0
	return nil
}

// Enter begins an operation section. The operation's records are appended
// and the operation applied before the matching Exit; Rollover waits for
// every section in flight. Sections must be short and must not nest.
func (j *Journal) Enter() { j.gate.RLock() }

// Exit ends an operation section.
func (j *Journal) Exit() { j.gate.RUnlock() }

// Append writes records to the active segment, all of them with one
// write(2) (so an operation that needs an entry and a data record pays for
// one call), and assigns their Seq and Time. It must be called between
// Enter and Exit, or from OnRollover. A D or M record equal to one already
// in the active segment is skipped (its Seq is left 0).
func (j *Journal) Append(recs ...*Record) error {
	for _, r := range recs {
		if !r.Op.Valid() {
			return fmt.Errorf("append: invalid op %d", r.Op)
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	if j.err != nil {
		return j.err
	}
	buf := j.buf[:0]
	seq := j.lastSeq.Load()
	var now int64
	var keys [4]coalesceKey
	nkeys := 0
	for _, r := range recs {
		r.Seq = 0
		if r.Op.Kind() != KindEntry {
			key := coalesceKey{r.Op, r.GFID, r.Xattr, r.Mask}
			if _, ok := j.seen[key]; ok || containsKey(keys[:nkeys], key) {
				continue
			}
			if nkeys < len(keys) {
				keys[nkeys] = key
				nkeys++
			}
		}
		if now == 0 {
			now = j.now().UnixNano()
		}
		seq++
		r.Seq, r.Time = seq, now
		start := len(buf)
		buf = Encode(append(buf, make([]byte, frameHeader)...), r)
		if len(buf)-start-frameHeader > maxPayload {
			for _, r := range recs {
				r.Seq = 0
			}
			return fmt.Errorf("append %s: record of %d bytes is too large", r.Op, len(buf)-start-frameHeader)
		}
		buf = append(buf[:start], putFrame(buf[start:])...)
	}
	j.buf = buf[:0]
	if len(buf) == 0 {
		return nil
	}
	if _, err := j.f.WriteAt(buf, j.off); err != nil {
		for _, r := range recs {
			r.Seq = 0
		}
		return j.writeFailed(err)
	}
	j.off += int64(len(buf))
	j.records += int(seq - j.lastSeq.Load())
	j.lastSeq.Store(seq)
	for _, k := range keys[:nkeys] {
		j.seen[k] = struct{}{}
	}
	return nil
}

func containsKey(keys []coalesceKey, k coalesceKey) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// writeFailed cuts a partial frame so later records stay readable; if it
// cannot, the journal is broken for good.
func (j *Journal) writeFailed(err error) error {
	err = fmt.Errorf("append to %s: %w", j.name, err)
	if terr := j.f.Truncate(j.off); terr != nil {
		j.err = fmt.Errorf("%w (and cutting the partial record failed: %v)", err, terr)
		j.log.Error("journal broken", zap.Error(j.err))
		return j.err
	}
	return err
}

// Sync makes every record appended so far durable. It does not hold up
// Append while the disk works.
func (j *Journal) Sync() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return ErrClosed
	}
	if j.err != nil {
		j.mu.Unlock()
		return j.err
	}
	// A duplicate descriptor stays valid if Rollover seals and closes the
	// active segment meanwhile; sealing fsyncs it anyway.
	fd, err := dupFd(j.f)
	name := j.name
	j.mu.Unlock()
	if err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Fdatasync(fd); err != nil {
		err = fmt.Errorf("sync journal segment %s: %w", name, err)
		j.mu.Lock()
		if j.err == nil {
			j.err = err // after a failed fsync the page cache can't be trusted
		}
		j.mu.Unlock()
		return err
	}
	return nil
}

func dupFd(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.Dup(int(s)) }); err != nil {
		return -1, err
	}
	return fd, derr
}

// Rollover seals the active segment, if it holds any record, and opens a
// new one; then it calls OnRollover and applies retention. It waits for
// every operation section in flight.
func (j *Journal) Rollover() error {
	j.gate.Lock()
	err := j.roll()
	if err == nil && j.onRoll != nil {
		j.onRoll()
	}
	j.gate.Unlock()
	if err != nil {
		return err
	}
	return j.retain()
}

func (j *Journal) roll() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	if j.err != nil {
		return j.err
	}
	clear(j.seen)
	if j.records == 0 {
		return nil // an empty window reuses its file
	}
	if err := j.seal(); err != nil {
		return j.fail(err)
	}
	if err := j.openActive(j.lastSeq.Load()+1, false); err != nil {
		return j.fail(err)
	}
	if err := fsyncDir(j.dir); err != nil {
		return j.fail(err)
	}
	return nil
}

func (j *Journal) fail(err error) error {
	j.err = fmt.Errorf("journal rollover: %w", err)
	j.log.Error("journal broken", zap.Error(err))
	return j.err
}

// seal makes the active segment a closed one. Its mtime is set to the
// journal clock: retention ages segments from their seal. The caller
// fsyncs the directory.
func (j *Journal) seal() error {
	f, name, last := j.f, j.name, j.lastSeq.Load()
	j.f = nil
	path := segPath(j.dir, name)
	now := j.now()
	if err := os.Chtimes(path, now, now); err != nil {
		f.Close()
		return fmt.Errorf("seal %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("seal %s: fsync: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("seal %s: %w", name, err)
	}
	closed := closedName(j.first, last)
	if err := os.Rename(path, segPath(j.dir, closed)); err != nil {
		return fmt.Errorf("seal %s: %w", name, err)
	}
	j.sealedMu.Lock()
	close(j.sealed)
	j.sealed = make(chan struct{})
	j.sealedMu.Unlock()
	if ce := j.log.Check(zap.DebugLevel, "journal segment sealed"); ce != nil {
		ce.Write(zap.String("segment", closed), zap.Int("records", j.records))
	}
	return nil
}

// Sealed returns a channel that is closed when the next segment is sealed
// (readers of closed segments wait on it instead of polling).
func (j *Journal) Sealed() <-chan struct{} {
	j.sealedMu.Lock()
	defer j.sealedMu.Unlock()
	return j.sealed
}

// Close stops the rollover ticker, seals the active segment and releases
// the journal. An empty active segment is left in place: its name keeps
// the next seq even if retention removes every closed segment. Closing
// twice is harmless.
func (j *Journal) Close() error {
	j.stopOnce.Do(func() { close(j.stop) })
	<-j.done
	j.gate.Lock()
	defer j.gate.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	if j.err != nil {
		if j.f != nil {
			j.f.Close()
			j.f = nil
		}
		return j.err
	}
	var err error
	if j.records > 0 {
		err = j.seal()
	} else {
		err = j.f.Close()
		j.f = nil
	}
	if serr := fsyncDir(j.dir); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("close journal: %w", err)
	}
	return nil
}

// LastSeq returns the last seq assigned (0 if none ever was).
func (j *Journal) LastSeq() uint64 { return j.lastSeq.Load() }

func (j *Journal) run() {
	defer close(j.done)
	t := time.NewTicker(j.every)
	defer t.Stop()
	var logged error
	for {
		select {
		case <-j.stop:
			return
		case <-t.C:
		}
		err := j.Rollover()
		if err != nil && !errors.Is(err, ErrClosed) && (logged == nil || err.Error() != logged.Error()) {
			j.log.Error("journal rollover failed", zap.Error(err))
			logged = err
		}
	}
}

// Dir returns the journal's directory.
func (j *Journal) Dir() string { return j.dir }
