package replicator

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/layout"
	"github.com/replfs/replfs/internal/target"
)

// RepairOptions tunes a repair.
type RepairOptions struct {
	Checksum  bool // compare (and so repair) content of every file, as verify --checksum
	KeepExtra bool // leave what the target has and the brick does not
	DryRun    bool // list the actions, change nothing
	Resume    bool // continue the repair interrupted at StateDir's checkpoint
	Jobs      int  // parallel copies; 0 means 3
	// StateDir holds the checkpoint (state.json) and the plan of an
	// unfinished repair: for a mirror, its .replfs/repair.
	StateDir  string
	MaxPasses int // repair-then-verify rounds; 0 means 3
	Log       *zap.Logger

	OnAction func(action, path string)         // each fix, before it is made (dry run: instead)
	OnWalk   func(pass int, v *Verifier)       // each verify walk, as it starts (for progress)
	OnApply  func(pass int, done, total int64) // progress of the fixes
}

// RepairState is the checkpoint of a repair (StateDir/state.json).
type RepairState struct {
	Format    int       `json:"format"` // RepairFormat
	Brick     string    `json:"brick"`  // brick id
	Target    string    `json:"target"` // target name
	Pass      int       `json:"pass"`
	Total     int64     `json:"total"` // differences in the plan
	Done      int64     `json:"done"`  // of them, fixed (or failed for good)
	Checksum  bool      `json:"checksum"`
	KeepExtra bool      `json:"keep_extra"`
	Started   time.Time `json:"started"`
}

// RepairResult is how a repair ended.
type RepairResult struct {
	Passes  int
	Found   int64              // differences the first walk found (dry run: the actions listed)
	ByKind  map[DiffKind]int64 // of those, by kind
	Applied int64              // fixes made
	Failed  []VerifyError      // fixes that failed after retries (the first 1000)
	Errors  []VerifyError      // entries the walks could not read (the first 1000)
	// Remaining is the last walk's summary: what still differs.
	Remaining VerifySummary
	InSync    bool
}

const maxListed = 1000

// RepairFormat is the version of the repair checkpoint (docs/formats.md).
const RepairFormat = 1

// RepairAction names the fix for a difference ("" when none is made).
func RepairAction(k DiffKind, keepExtra bool) string {
	switch k {
	case DiffMissing:
		return "create"
	case DiffExtra:
		if keepExtra {
			return ""
		}
		return "remove"
	case DiffType, DiffGFID:
		return "replace"
	case DiffSymlink:
		return "symlink"
	case DiffSize, DiffContent:
		return "copy"
	case DiffMode:
		return "chmod"
	case DiffOwner:
		return "chown"
	case DiffMtime:
		return "touch"
	case DiffXattrs:
		return "setxattr"
	case DiffHardlink:
		return "relink"
	case DiffIndex:
		return "repoint"
	case DiffChanged:
		return "sync"
	}
	return ""
}

// ErrNoRepairToResume: --resume found no checkpoint.
var ErrNoRepairToResume = errors.New("no interrupted repair to resume")

type repairer struct {
	ctx   context.Context // the repair's, for every target call
	brick BrickRef
	b     *brickTree
	t     target.Target
	opt   RepairOptions
	res   RepairResult
	st    RepairState
	log   *zap.Logger
}

// Repair makes target t equal to the brick: it walks both (as verify),
// fixes each difference with the smallest change, from the brick (which it
// never changes), and walks again until nothing differs (at most
// MaxPasses rounds). The fixes of a round are checkpointed in StateDir, so
// that an interrupted repair resumes where it stopped. t must be open.
func Repair(ctx context.Context, brick BrickRef, t target.Target, opt RepairOptions) (RepairResult, error) {
	if opt.Jobs <= 0 {
		opt.Jobs = 3
	}
	if opt.MaxPasses <= 0 {
		opt.MaxPasses = 3
	}
	if opt.Log == nil {
		opt.Log = zap.NewNop()
	}
	r := &repairer{ctx: ctx, brick: brick, b: brick.tree(), t: t, opt: opt, log: opt.Log,
		res: RepairResult{ByKind: map[DiffKind]int64{}}}
	if opt.DryRun {
		return r.dryRun(ctx)
	}
	if err := os.MkdirAll(opt.StateDir, 0o700); err != nil {
		return r.res, fmt.Errorf("repair checkpoint %s: %w", opt.StateDir, err)
	}
	lock, err := os.OpenFile(filepath.Join(opt.StateDir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return r.res, fmt.Errorf("repair checkpoint %s: %w", opt.StateDir, err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return r.res, fmt.Errorf("another repair of %s is running", t.Name())
	}
	pass := 1
	if opt.Resume {
		st, ok, err := ReadRepairState(opt.StateDir)
		if err != nil {
			return r.res, err
		}
		if !ok {
			return r.res, fmt.Errorf("%s: %w", t.Name(), ErrNoRepairToResume)
		}
		if st.Brick != brick.ID {
			return r.res, fmt.Errorf("the interrupted repair of %s was from another brick (%s)", t.Name(), st.Brick)
		}
		r.st = st
		r.opt.Checksum, r.opt.KeepExtra = st.Checksum, st.KeepExtra
		r.log.Info("repair resumed", zap.String("target", t.Name()), zap.Int64("done", st.Done), zap.Int64("total", st.Total))
		if err := r.applyPlan(ctx); err != nil {
			return r.res, err
		}
		pass = st.Pass + 1
	} else {
		r.st = RepairState{Format: RepairFormat, Brick: brick.ID, Target: t.Name(), Checksum: opt.Checksum, KeepExtra: opt.KeepExtra,
			Started: time.Now().UTC()}
	}
	for ; ; pass++ {
		r.res.Passes = pass
		sum, err := r.walk(ctx, pass)
		if err != nil {
			return r.res, err
		}
		r.res.Remaining = sum
		left := sum.Differences
		if r.opt.KeepExtra {
			left -= sum.ByKind[DiffExtra]
		}
		if pass == 1 && !opt.Resume {
			r.res.Found = sum.Differences
			r.res.ByKind = maps(sum.ByKind)
		}
		if left == 0 || pass > opt.MaxPasses {
			r.res.InSync = left == 0
			break
		}
		if err := r.applyPlan(ctx); err != nil {
			return r.res, err
		}
	}
	os.Remove(filepath.Join(opt.StateDir, "plan.jsonl"))
	os.Remove(filepath.Join(opt.StateDir, "state.json"))
	return r.res, nil
}

// ReadRepairState reads a repair checkpoint; ok is false when there is none.
func ReadRepairState(dir string) (RepairState, bool, error) {
	var st RepairState
	data, err := layout.ReadInfoPath(filepath.Join(dir, "state.json"), layout.MaxInfoSize)
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, false, fmt.Errorf("repair checkpoint %s: corrupt state.json: %v", dir, err)
	}
	if st.Format != RepairFormat {
		return st, false, fmt.Errorf("repair checkpoint %s: unsupported format %d (this replfs reads %d)", dir, st.Format, RepairFormat)
	}
	return st, true, nil
}

func (r *repairer) saveState() error {
	data, _ := json.MarshalIndent(r.st, "", "  ")
	return layout.WriteFileAtomicPath(filepath.Join(r.opt.StateDir, "state.json"), append(data, '\n'))
}

func (r *repairer) addError(e VerifyError) {
	if len(r.res.Errors) < maxListed {
		r.res.Errors = append(r.res.Errors, e)
	}
}

// walk verifies the target and writes what differs to the plan.
func (r *repairer) walk(ctx context.Context, pass int) (VerifySummary, error) {
	planPath := filepath.Join(r.opt.StateDir, "plan.jsonl")
	f, err := os.OpenFile(planPath+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return VerifySummary{}, fmt.Errorf("repair plan: %w", err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<16)
	enc := json.NewEncoder(w)
	var werr error
	r.res.Errors = r.res.Errors[:0]
	v := NewVerifier(r.brick, r.t, VerifyOptions{Checksum: r.opt.Checksum,
		OnDiff: func(d Difference) {
			if werr == nil && RepairAction(d.Kind, r.opt.KeepExtra) != "" {
				werr = enc.Encode(d)
			}
		},
		OnError: r.addError})
	if r.opt.OnWalk != nil {
		r.opt.OnWalk(pass, v)
	}
	sum, err := v.Run(ctx)
	if err != nil {
		return sum, err
	}
	if werr == nil {
		werr = w.Flush()
	}
	if werr == nil {
		werr = f.Sync()
	}
	if werr != nil {
		return sum, fmt.Errorf("repair plan: %w", werr)
	}
	// The checkpoint goes first: killed between the two, a resume
	// re-applies the previous plan from its start (harmless), never skips
	// lines of the new one.
	total := sum.Differences
	if r.opt.KeepExtra {
		total -= sum.ByKind[DiffExtra]
	}
	r.st.Pass, r.st.Total, r.st.Done = pass, total, 0
	if err := r.saveState(); err != nil {
		return sum, fmt.Errorf("repair checkpoint: %w", err)
	}
	if err := os.Rename(planPath+".tmp", planPath); err != nil {
		return sum, fmt.Errorf("repair plan: %w", err)
	}
	return sum, nil
}

func (r *repairer) dryRun(ctx context.Context) (RepairResult, error) {
	v := NewVerifier(r.brick, r.t, VerifyOptions{Checksum: r.opt.Checksum,
		OnDiff: func(d Difference) {
			if a := RepairAction(d.Kind, r.opt.KeepExtra); a != "" {
				r.res.Found++
				r.res.ByKind[d.Kind]++
				if r.opt.OnAction != nil {
					r.opt.OnAction(a, d.Path)
				}
			}
		},
		OnError: r.addError})
	if r.opt.OnWalk != nil {
		r.opt.OnWalk(1, v)
	}
	sum, err := v.Run(ctx)
	r.res.Passes, r.res.Remaining, r.res.InSync = 1, sum, r.res.Found == 0
	return r.res, err
}

// applyPlan makes the fixes of the plan from the checkpoint's Done on,
// saving the checkpoint every few hundred fixes (each saved after it and
// everything before it is complete on the target).
func (r *repairer) applyPlan(ctx context.Context) error {
	f, err := os.Open(filepath.Join(r.opt.StateDir, "plan.jsonl"))
	if errors.Is(err, fs.ErrNotExist) && r.opt.Resume {
		return nil // killed before its first plan was in place: walk again
	}
	if err != nil {
		return fmt.Errorf("repair plan: %w", err)
	}
	defer f.Close()
	c := &counters{}
	s := newSyncer(r.ctx, r.b, r.t, r.log, c, r.opt.Jobs, r.opt.KeepExtra)
	s.onFail = func(what string, g gfid.GFID, where string, err error) {
		if len(r.res.Failed) < maxListed {
			r.res.Failed = append(r.res.Failed, VerifyError{Path: where, Err: what + ": " + err.Error()})
		}
	}
	s.creating = true
	force := map[gfid.GFID]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	var i int64
	last := time.Now()
	for sc.Scan() {
		i++
		if i <= r.st.Done {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var d Difference
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			return fmt.Errorf("repair plan line %d: %v", i, err)
		}
		if r.opt.OnAction != nil {
			r.opt.OnAction(RepairAction(d.Kind, r.opt.KeepExtra), d.Path)
		}
		if err := r.fix(s, d, force); err != nil {
			s.drain()
			return err
		}
		r.res.Applied++
		if i%256 == 0 || time.Since(last) > 500*time.Millisecond {
			if err := r.flush(s, force); err != nil {
				return err
			}
			r.st.Done = i
			if err := r.saveState(); err != nil {
				return fmt.Errorf("repair checkpoint: %w", err)
			}
			last = time.Now()
			if r.opt.OnApply != nil {
				r.opt.OnApply(r.st.Pass, i, r.st.Total)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("repair plan: %w", err)
	}
	if err := r.flush(s, force); err != nil {
		return err
	}
	if err := r.t.Sync(r.ctx); err != nil {
		return err
	}
	r.st.Done = i
	if r.opt.OnApply != nil {
		r.opt.OnApply(r.st.Pass, i, r.st.Total)
	}
	return r.saveState()
}

// fix starts the fix of one difference; what can wait (content, times of
// directories) is done at the next flush.
func (r *repairer) fix(s *syncer, d Difference, force map[gfid.GFID]string) error {
	g, _ := gfid.Parse(d.GFID)
	if d.Path == "." {
		g = gfid.Root
	}
	parent, perr := gfid.Parse(d.Parent)
	name := path.Base(d.Path)
	entry := func(op func() error) error {
		if perr != nil || d.Path == "." {
			return fmt.Errorf("repair plan: %s has no parent directory gfid", d.Path)
		}
		return s.retry(RepairAction(d.Kind, false), g, d.Path, op)
	}
	switch d.Kind {
	case DiffMissing, DiffExtra, DiffType, DiffGFID:
		return entry(func() error { return s.converge(parent, name) })
	case DiffChanged:
		if err := entry(func() error { return s.converge(parent, name) }); err != nil {
			return err
		}
		if g != gfid.Zero {
			s.data[g] = struct{}{}
			s.dirMeta[g] = struct{}{}
		}
	case DiffSymlink:
		return entry(func() error {
			if err := r.t.Unlink(r.ctx, parent, name, g); err != nil && !isNoEntry(err) {
				return err
			}
			return s.converge(parent, name)
		})
	case DiffHardlink:
		return entry(func() error { return r.relink(g, parent, name) })
	case DiffIndex:
		return entry(func() error { return r.repoint(g, parent, name) })
	case DiffSize:
		s.data[g] = struct{}{}
	case DiffContent:
		force[g] = d.Path
	case DiffMode, DiffOwner, DiffMtime, DiffXattrs:
		s.dirMeta[g] = struct{}{} // last, after the entries below it changed
	}
	return nil
}

// flush completes every fix started: new subtrees, content, attributes.
func (r *repairer) flush(s *syncer, force map[gfid.GFID]string) error {
	for len(s.walk) > 0 {
		g := s.walk[0]
		s.walk = s.walk[1:]
		if err := s.syncDir(g, 0, false); err != nil {
			s.drain()
			return err
		}
	}
	for g, p := range force {
		s.submit(func() error {
			return s.retry("copy", g, p, func() error { return r.copy(g) })
		})
	}
	clear(force)
	if err := s.drain(); err != nil {
		return err
	}
	s.creating = false
	err := s.finish()
	s.creating = true
	return err
}

// copy rewrites g's content on the target from the brick, whatever their
// sizes and times say (a checksum found them different).
func (r *repairer) copy(g gfid.GFID) error {
	f, a, err := r.b.open(g)
	if err != nil {
		if isNoEntry(err) {
			return nil
		}
		return err
	}
	defer f.Close()
	x, err := fdXattrs(int(f.Fd()), "", f.Name())
	if err != nil {
		return err
	}
	_, err = r.t.WriteFile(r.ctx, g, target.FileSource{Fd: int(f.Fd()), Path: f.Name(), Len: a.Size}, a, x)
	return err
}
