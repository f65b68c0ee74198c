// Package replicator drains a brick's journal to its targets: one worker
// per target, each converging its target to the brick for what the
// journal names (or for the whole brick, in a hybrid crawl).
package replicator

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
	"github.com/replfs/replfs/journal"
)

// Config configures the replicator of one mount.
type Config struct {
	Brick      string // brick root (absolute)
	BrickID    string // from brick.json
	GFIDXattr  string
	XtimeXattr string
	Journal    *journal.Journal
	Targets    []target.Target

	SyncJobs      int           // parallel data transfers per target; 0 means 3
	BatchSize     int           // records per batch; 0 means 8192
	IgnoreDeletes bool          // never remove from targets what is gone from the brick
	Retention     time.Duration // how long a faulty target's segments are kept; 0 means 24h
	Rollover      time.Duration
	// VerifyInterval, when set, runs a verify of every target that often
	// (status shows the last result).
	VerifyInterval time.Duration
	Logger         *zap.Logger
}

// Manager runs the workers of one mount and implements Controller.
type Manager struct {
	cfg     Config
	workers []*worker
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

const consumerPrefix = "target:"

// Start opens every target (a target that cannot be opened fails Start:
// a configuration error is reported at mount time) and starts its worker.
func Start(cfg Config) (*Manager, error) {
	if cfg.SyncJobs <= 0 {
		cfg.SyncJobs = 3
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 8192
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 24 * time.Hour
	}
	if cfg.Rollover <= 0 {
		cfg.Rollover = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	m := &Manager{cfg: cfg}
	b := &brickTree{newTree(cfg.Brick, cfg.GFIDXattr, cfg.XtimeXattr)}
	names := map[string]bool{}
	for _, t := range cfg.Targets {
		if err := t.Open(context.Background(), cfg.BrickID); err != nil {
			return nil, err
		}
		id := t.Name()
		if it, ok := t.(target.Identified); ok {
			id = it.ID()
		}
		w := &worker{cfg: &m.cfg, t: t, b: b, log: cfg.Logger, opened: true,
			file: filepath.Join(cfg.Brick, gfid.StateDir, "state", id+".json"),
			name: consumerPrefix + id, since: time.Now(),
			state: StateInitializing, crawl: CrawlChangelog, wake: make(chan struct{}, 1)}
		names[w.name] = true
		w.loadState()
		if w.st.Hybrid {
			w.crawl = CrawlHybrid
		}
		m.workers = append(m.workers, w)
	}
	// Consumers of targets no longer configured would hold segments forever.
	for name := range cfg.Journal.Consumers() {
		if strings.HasPrefix(name, consumerPrefix) && !names[name] {
			cfg.Logger.Info("journal consumer of a target no longer configured removed", zap.String("consumer", name))
			cfg.Journal.RemoveConsumer(name)
		}
	}
	for _, w := range m.workers {
		w.register()
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	for _, w := range m.workers {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			w.run(ctx)
		}()
	}
	if cfg.VerifyInterval > 0 && len(m.workers) > 0 {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.verifyLoop(ctx, b)
		}()
	}
	return m, nil
}

// Stop cancels every worker and waits for each to return: a batch in
// progress stops at its next target call, its cursor not advanced, and is
// replayed at the next start.
func (m *Manager) Stop() {
	m.cancel()
	m.wg.Wait()
	for _, w := range m.workers {
		w.t.Close()
	}
}

func (m *Manager) Status() []TargetStatus {
	out := make([]TargetStatus, 0, len(m.workers))
	for _, w := range m.workers {
		out = append(out, w.status())
	}
	return out
}

func (m *Manager) Checkpoint() (time.Time, error) {
	j := m.cfg.Journal
	seq := j.LastSeq()
	now := time.Now()
	// Seal what is written so far, so targets can reach the checkpoint now.
	if err := j.Rollover(); err != nil {
		return time.Time{}, err
	}
	for _, w := range m.workers {
		w.mu.Lock()
		w.st.Checkpoint, w.st.CheckpointSeq, w.st.CheckpointDone = now.UnixNano(), seq, 0
		w.checkpointReached()
		w.mu.Unlock()
		if err := w.saveState(); err != nil {
			return time.Time{}, err
		}
		w.kick()
	}
	return now, nil
}

func (m *Manager) find(target string) (*worker, error) {
	for _, w := range m.workers {
		if w.t.Name() == target {
			return w, nil
		}
	}
	var names []string
	for _, w := range m.workers {
		names = append(names, w.t.Name())
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no target %q: this mount has no targets", target)
	}
	return nil, fmt.Errorf("no target %q (targets: %s)", target, strings.Join(names, ", "))
}

func (m *Manager) Pause(target string) error { return m.setPaused(target, true) }

func (m *Manager) Resume(target string) error { return m.setPaused(target, false) }

func (m *Manager) setPaused(target string, p bool) error {
	w, err := m.find(target)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.st.Paused = p
	if !p && w.state == StatePaused {
		w.state = StateActive
	}
	w.mu.Unlock()
	if err := w.saveState(); err != nil {
		return err
	}
	w.kick()
	return nil
}

// CheckMirrorRoot rejects a mirror path that is not absolute, does not
// exist, or is not a directory (a symlink is refused too), changing
// nothing. That it is apart from the brick, the mountpoint and the other
// mirrors is options.CheckSeparate's to say, once every path is known to
// lead somewhere.
func CheckMirrorRoot(mirror string) error {
	if !filepath.IsAbs(mirror) {
		return fmt.Errorf("mirror %s: not an absolute path", mirror)
	}
	root, err := openMirrorRoot(mirror)
	if err != nil {
		return err
	}
	return root.Close()
}

// CheckMirrorPath rejects a mirror directory before anything is changed:
// besides CheckMirrorRoot's checks, it must not be a brick, must keep
// replfs's own directories as directories, and must be a mirror of this
// brick, or empty, or (adopt: mirror-adopt=) a copy to seed the mirror
// from; never a mirror of another brick (brickID empty: a brick not
// initialized yet, of which no directory is a mirror).
func CheckMirrorPath(mirror, brickID string, adopt bool) error {
	if !filepath.IsAbs(mirror) {
		return fmt.Errorf("mirror %s: not an absolute path", mirror)
	}
	root, err := openMirrorRoot(mirror)
	if err != nil {
		return err
	}
	defer root.Close()
	ti, ok, err := readInfoAt(root)
	switch {
	case err != nil:
		return err
	case ok:
		return checkTargetInfo(mirror, ti, brickID)
	case !adopt:
		return checkEmpty(root)
	}
	return nil
}
