package replicator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/replfs/replfs/internal/layout"
	"github.com/replfs/replfs/internal/target"
	"github.com/replfs/replfs/journal"
)

// workerState is what a worker keeps across restarts, in
// BRICK/.replfs/state/<target id>.json.
type workerState struct {
	Target string `json:"target"`
	Cursor uint64 `json:"cursor"` // last journal seq applied
	Stime  int64  `json:"stime"`  // unix ns up to which the target is complete
	// Hybrid: a hybrid crawl is needed (first sync, journal gap); it
	// replays the journal from HybridFrom once the walk is done.
	Hybrid     bool   `json:"hybrid"`
	HybridFrom uint64 `json:"hybrid_from,omitempty"`
	Paused     bool   `json:"paused,omitempty"`

	Checkpoint     int64  `json:"checkpoint,omitempty"` // unix ns
	CheckpointSeq  uint64 `json:"checkpoint_seq,omitempty"`
	CheckpointDone int64  `json:"checkpoint_done,omitempty"`
}

// worker replicates the brick to one target.
type worker struct {
	cfg   *Config
	t     target.Target
	b     *brickTree
	log   *zap.Logger
	file  string // state file
	name  string // journal consumer name
	c     counters
	since time.Time // when the worker started (History vs Changelog)

	saveMu     sync.Mutex // serializes state file writes
	mu         sync.Mutex
	st         workerState
	state      State
	crawl      Crawl
	lastErr    string
	lastErrAt  time.Time
	faultSince time.Time
	pending    [3]int // E, D, M records of the batch in progress
	wake       chan struct{}
	opened     bool
	dropped    bool // journal consumer dropped after a long outage
	lastVerify *VerifyStatus

	r     *journal.Reader
	batch []journal.Record
}

// loadState reads the worker's state at start; a state that cannot be
// trusted is replaced by one that runs a hybrid crawl. The file is read
// through layout.ReadInfoPath: a fifo there would hang the start, a
// symlink to /dev/zero exhaust memory.
func (w *worker) loadState() {
	w.st = workerState{Target: w.t.Name(), Hybrid: true}
	data, err := layout.ReadInfoPath(w.file, layout.MaxInfoSize)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var st workerState
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil {
		w.log.Warn("replication state unreadable: a hybrid crawl will rebuild it", zap.String("target", w.t.Name()),
			zap.String("file", w.file), zap.Error(err))
		return
	}
	w.st = st
	w.st.Target = w.t.Name()
	w.checkCursor()
}

// checkCursor catches a cursor beyond the journal's last record (a state
// file edited or restored from another day, a journal replaced): the
// worker would wait for records that never come while status showed the
// target complete. Nothing else in such a state can be trusted either, so
// a hybrid crawl of the whole brick (no stime to skip by) rebuilds it,
// and the journal is then followed from its real end.
func (w *worker) checkCursor() {
	last := w.cfg.Journal.LastSeq()
	if w.st.Cursor <= last && w.st.HybridFrom <= last {
		return
	}
	w.log.Warn("replication state is ahead of the journal: running a hybrid crawl of the whole brick for this target",
		zap.String("target", w.t.Name()), zap.String("file", w.file),
		zap.Uint64("cursor", w.st.Cursor), zap.Uint64("hybrid_from", w.st.HybridFrom), zap.Uint64("journal_last_seq", last))
	w.st.Hybrid, w.st.HybridFrom, w.st.Cursor, w.st.Stime = true, 0, 0, 0
	if w.st.Checkpoint != 0 {
		// Judged against a cursor that was not true: reached again only
		// once the crawl is done.
		w.st.CheckpointSeq, w.st.CheckpointDone = min(w.st.CheckpointSeq, last), 0
	}
}

func (w *worker) saveState() error {
	// Saves come from the worker and from control requests: one at a
	// time, so that a newer state is never overwritten by an older one.
	w.saveMu.Lock()
	defer w.saveMu.Unlock()
	w.mu.Lock()
	data, _ := json.MarshalIndent(w.st, "", "  ")
	w.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(w.file), 0o700); err != nil {
		return err
	}
	return layout.WriteFileAtomicPath(w.file, append(data, '\n'))
}

func (w *worker) setState(s State, c Crawl) {
	w.mu.Lock()
	if s != "" {
		w.state = s
	}
	if c != "" {
		w.crawl = c
	}
	w.mu.Unlock()
}

func (w *worker) kick() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run is the worker's loop, until ctx ends.
func (w *worker) run(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		w.mu.Lock()
		paused := w.st.Paused
		w.mu.Unlock()
		if paused {
			w.setState(StatePaused, "")
			select {
			case <-ctx.Done():
			case <-w.wake:
			}
			continue
		}
		idle, err := w.step(ctx)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			w.fault(err)
			select {
			case <-ctx.Done():
			case <-w.wake:
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		backoff = time.Second
		w.recovered()
		if idle {
			select {
			case <-ctx.Done():
			case <-w.wake:
			case <-w.cfg.Journal.Sealed():
			case <-time.After(time.Second):
			}
		}
	}
	w.setState(StateStopped, "")
	if w.r != nil {
		w.r.Close()
	}
}

func (w *worker) fault(err error) {
	now := time.Now()
	w.mu.Lock()
	first := w.state != StateFaulty
	w.state = StateFaulty
	w.lastErr, w.lastErrAt = err.Error(), now
	if first {
		w.faultSince = now
	}
	long := !w.dropped && now.Sub(w.faultSince) > w.cfg.Retention
	if long {
		w.dropped = true
	}
	w.mu.Unlock()
	if first {
		w.log.Error("target faulty", zap.String("target", w.t.Name()), zap.Error(err))
	}
	if long {
		// Keeping every segment for a target that is away longer than the
		// retention window would fill the brick: let them go; a hybrid
		// crawl catches the target up when it is back.
		w.log.Warn("target away longer than the retention window: journal segments no longer kept for it",
			zap.String("target", w.t.Name()), zap.Duration("retention", w.cfg.Retention))
		w.cfg.Journal.RemoveConsumer(w.name)
	}
}

func (w *worker) recovered() {
	w.mu.Lock()
	was := w.state == StateFaulty
	if w.state == StateFaulty || w.state == StateInitializing || w.state == StatePaused {
		w.state = StateActive
	}
	dropped := w.dropped
	w.dropped = false
	w.mu.Unlock()
	if was {
		w.log.Info("target active again", zap.String("target", w.t.Name()))
	}
	if dropped {
		w.register()
	}
}

func (w *worker) register() {
	w.mu.Lock()
	seq := w.st.Cursor
	if w.st.Hybrid {
		seq = w.st.HybridFrom
	}
	w.mu.Unlock()
	if err := w.cfg.Journal.SetConsumer(w.name, seq); err != nil {
		w.log.Warn("journal consumer", zap.String("target", w.t.Name()), zap.Error(err))
	}
}

// step does one unit of work; idle reports that there was none.
func (w *worker) step(ctx context.Context) (idle bool, err error) {
	if !w.opened {
		if err := w.t.Open(ctx, w.cfg.BrickID); err != nil {
			return false, err
		}
		w.opened = true
	}
	if err := w.t.Check(ctx); err != nil {
		return false, err
	}
	w.mu.Lock()
	hybrid := w.st.Hybrid
	w.mu.Unlock()
	if hybrid {
		return false, w.hybrid(ctx)
	}
	if w.batch == nil {
		gap, err := w.read()
		if err != nil {
			return false, err
		}
		if gap {
			return false, nil
		}
	}
	if len(w.batch) == 0 {
		w.batch = nil
		w.caughtUp()
		return true, nil
	}
	return false, w.apply(ctx)
}

// read fills w.batch with up to BatchSize records of sealed segments
// after the cursor. It reports a gap when the journal no longer holds the
// records right after the cursor, and switches to a hybrid crawl.
func (w *worker) read() (gap bool, err error) {
	w.mu.Lock()
	cursor := w.st.Cursor
	w.mu.Unlock()
	if w.r == nil {
		if w.r, err = journal.NewReader(w.cfg.Journal.Dir(), cursor+1, journal.ReaderOptions{}); err != nil {
			return false, err
		}
	}
	batch := make([]journal.Record, 0, min(w.cfg.BatchSize, 1024))
	var counts [3]int
	for len(batch) < w.cfg.BatchSize {
		rec, err := w.r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			w.r.Close()
			w.r = nil
			return false, err
		}
		if len(batch) == 0 && rec.Seq != cursor+1 {
			w.r.Close()
			w.r = nil
			w.log.Warn("journal gap: records after the target's cursor are gone; starting a hybrid crawl",
				zap.String("target", w.t.Name()), zap.Uint64("cursor", cursor), zap.Uint64("next_seq", rec.Seq))
			w.mu.Lock()
			w.st.Hybrid = true
			w.mu.Unlock()
			return true, nil
		}
		batch = append(batch, rec)
		switch rec.Kind() {
		case journal.KindEntry:
			counts[0]++
		case journal.KindData:
			counts[1]++
		default:
			counts[2]++
		}
	}
	if len(batch) == 0 && w.cfg.Journal.LastSeq() > cursor {
		// Nothing to read, yet records were written after the cursor: if
		// the journal no longer reaches back to it, they are gone.
		if oldest, ok, err := journal.Oldest(w.cfg.Journal.Dir()); err == nil && ok && oldest > cursor+1 {
			w.r.Close()
			w.r = nil
			w.log.Warn("journal gap: records after the target's cursor are gone; starting a hybrid crawl",
				zap.String("target", w.t.Name()), zap.Uint64("cursor", cursor), zap.Uint64("oldest_seq", oldest))
			w.mu.Lock()
			w.st.Hybrid = true
			w.mu.Unlock()
			return true, nil
		}
	}
	w.batch = batch
	w.mu.Lock()
	w.pending = counts
	if len(batch) > 0 {
		if time.Unix(0, batch[0].Time).Before(w.since) {
			w.crawl = CrawlHistory
		} else {
			w.crawl = CrawlChangelog
		}
	}
	w.mu.Unlock()
	return false, nil
}

// caughtUp: every sealed record is applied.
func (w *worker) caughtUp() {
	w.mu.Lock()
	w.crawl = CrawlChangelog
	if w.st.Cursor >= w.cfg.Journal.LastSeq() {
		w.st.Stime = time.Now().UnixNano()
	}
	done := w.checkpointReached()
	w.mu.Unlock()
	if done {
		w.saveState()
	}
}

// checkpointReached marks the checkpoint completed when the cursor passed
// it. w.mu is held.
func (w *worker) checkpointReached() bool {
	if w.st.Checkpoint != 0 && w.st.CheckpointDone == 0 && w.st.Cursor >= w.st.CheckpointSeq {
		w.st.CheckpointDone = time.Now().UnixNano()
		w.log.Info("checkpoint completed", zap.String("target", w.t.Name()),
			zap.Time("checkpoint", time.Unix(0, w.st.Checkpoint)))
		return true
	}
	return false
}

// apply applies w.batch and advances the cursor.
func (w *worker) apply(ctx context.Context) error {
	start := time.Now()
	bytes0, files0, fail0 := w.c.bytes.Load(), w.c.files.Load(), w.c.failures.Load()
	s := newSyncer(ctx, w.b, w.t, w.log, &w.c, w.cfg.SyncJobs, w.cfg.IgnoreDeletes)
	w.mu.Lock()
	s.replay = w.crawl == CrawlHistory
	w.mu.Unlock()
	if err := s.applyRecords(w.batch); err != nil {
		return err
	}
	if err := w.t.Sync(ctx); err != nil {
		return classify(err)
	}
	last := w.batch[len(w.batch)-1]
	w.mu.Lock()
	w.st.Cursor = last.Seq
	w.st.Stime = last.Time
	w.checkpointReached()
	counts := w.pending
	w.pending = [3]int{}
	crawl := w.crawl
	w.mu.Unlock()
	if err := w.t.SetStime(ctx, time.Unix(0, last.Time)); err != nil {
		return classify(err)
	}
	if err := w.saveState(); err != nil {
		return fmt.Errorf("save replication state: %w", err)
	}
	if err := w.cfg.Journal.SetConsumer(w.name, last.Seq); err != nil {
		w.log.Warn("journal consumer", zap.Error(err))
	}
	ops := map[string]int{}
	for i := range w.batch {
		ops[w.batch[i].Op.String()]++
	}
	w.log.Info("batch applied", zap.String("target", w.t.Name()), zap.String("crawl", string(crawl)), zap.Any("ops", ops),
		zap.Uint64("from", w.batch[0].Seq),
		zap.Uint64("to", last.Seq), zap.Int("entry", counts[0]), zap.Int("data", counts[1]), zap.Int("meta", counts[2]),
		zap.Uint64("files", w.c.files.Load()-files0), zap.Uint64("bytes", w.c.bytes.Load()-bytes0),
		zap.Uint64("failures", w.c.failures.Load()-fail0), zap.Duration("took", time.Since(start)))
	w.batch = nil
	return nil
}

// hybrid walks the brick and converges the target, then resumes the
// journal from where the walk began.
func (w *worker) hybrid(ctx context.Context) error {
	w.setState("", CrawlHybrid)
	j := w.cfg.Journal
	w.mu.Lock()
	since := w.st.Stime
	w.mu.Unlock()
	if since > 0 {
		// xtimes are flushed at rollover: keep a margin.
		since -= int64(w.cfg.Rollover + time.Second)
	}
	// Records up to from belong to operations that are complete once the
	// rollover (which waits for operations in flight) returns; later ones
	// are replayed after the walk.
	from := j.LastSeq()
	if err := j.Rollover(); err != nil {
		return err
	}
	start := time.Now()
	w.mu.Lock()
	w.st.Hybrid, w.st.HybridFrom = true, from
	w.mu.Unlock()
	w.register()
	if err := w.saveState(); err != nil {
		return err
	}
	w.log.Info("hybrid crawl started", zap.String("target", w.t.Name()), zap.Time("since", time.Unix(0, max(since, 0))),
		zap.Uint64("journal_from", from))
	bytes0, files0 := w.c.bytes.Load(), w.c.files.Load()
	s := newSyncer(ctx, w.b, w.t, w.log, &w.c, w.cfg.SyncJobs, w.cfg.IgnoreDeletes)
	if err := s.hybrid(max(since, 0)); err != nil {
		return err
	}
	if err := w.t.Sync(ctx); err != nil {
		return classify(err)
	}
	if err := w.t.SetStime(ctx, start); err != nil {
		return classify(err)
	}
	w.mu.Lock()
	w.st.Hybrid = false
	w.st.Cursor = from
	w.st.Stime = start.UnixNano()
	w.mu.Unlock()
	if err := w.saveState(); err != nil {
		return err
	}
	w.register()
	if w.r != nil {
		w.r.Close()
		w.r = nil
	}
	w.batch = nil
	w.log.Info("hybrid crawl done", zap.String("target", w.t.Name()), zap.Uint64("files", w.c.files.Load()-files0),
		zap.Uint64("bytes", w.c.bytes.Load()-bytes0), zap.Uint64("failures", w.c.failures.Load()),
		zap.Duration("took", time.Since(start)))
	return nil
}

func (w *worker) status() TargetStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	ts := TargetStatus{
		Target: w.t.Name(), Kind: w.t.Kind(), State: w.state, Crawl: w.crawl,
		Cursor:       w.st.Cursor,
		PendingEntry: w.pending[0], PendingData: w.pending[1], PendingMeta: w.pending[2],
		Failures: w.c.failures.Load(), LastError: w.lastErr, LastErrorTime: w.lastErrAt,
		BytesTransferred: w.c.bytes.Load(), FilesTransferred: w.c.files.Load(),
		LastVerify: w.lastVerify,
	}
	if w.st.Paused && w.state != StateStopped {
		ts.State = StatePaused
	}
	if w.st.Stime > 0 {
		ts.LastSynced = time.Unix(0, w.st.Stime)
		ts.Lag = max(time.Since(ts.LastSynced), 0)
	}
	if last := w.cfg.Journal.LastSeq(); last > w.st.Cursor {
		ts.Behind = last - w.st.Cursor
	}
	if w.st.Checkpoint != 0 {
		ts.Checkpoint = time.Unix(0, w.st.Checkpoint)
		if w.st.CheckpointDone != 0 {
			ts.CheckpointCompleted = true
			ts.CheckpointDone = time.Unix(0, w.st.CheckpointDone)
		}
	}
	return ts
}
