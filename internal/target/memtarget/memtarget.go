// Package memtarget is a target kept in memory: a brick-shaped tree with
// the semantics of a directory mirror (inodes by gfid, named entries, hard
// links, a limbo, a gfid index), for unit tests of the engine, verify and
// repair without a disk, and as the reference the conformance suite
// (targettest) is checked against.
//
// Invariants: a gfid names one inode; every name of an inode shares its
// content and attributes; a change is visible all at once or not at all
// (one mutex serializes every call); what a call refuses leaves the tree
// as it was. Hooks (SetDown, FailEntry, Crash, Unindex) bring about the
// failures a real target has, and Snapshot, Ops, Stime and Synced let a
// test see what was applied and in which order.
package memtarget

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/replfs/replfs/internal/target"
)

var (
	_ target.Target        = (*Target)(nil)
	_ target.HardLinker    = (*Target)(nil)
	_ target.IndexRepairer = (*Target)(nil)
	_ target.Hasher        = (*Target)(nil)
	_ target.TreeRemover   = (*Target)(nil)
)

// Target is one handle on an in-memory place. Handles made by Reopen
// share the place, as two opens of one directory mirror share its disk.
type Target struct {
	name   string
	p      *place
	opened bool // Open or Attach succeeded on this handle; guarded by p.mu
}

// place is what a directory mirror keeps on disk.
type place struct {
	mu      sync.Mutex
	live    *tree
	durable *tree  // live as of the last Sync: what Crash goes back to
	brick   string // set by the first Open, as target.json is
	stime   time.Time
	synced  int
	ops     []string
	down    error
	fail    map[string]error
	now     func() time.Time
}

// New returns an empty place that is not yet a target of any brick, and
// a handle on it.
func New(name string) *Target {
	p := &place{fail: map[string]error{}, now: time.Now}
	p.live = newTree(p.now().UnixNano())
	p.durable = p.live.clone()
	return &Target{name: name, p: p}
}

func (t *Target) Name() string { return t.name }
func (t *Target) Kind() string { return "memory" }

var errNotOpen = errors.New("used before Open or Attach")

// begin starts a call on an opened handle: it returns with the place
// locked, or an error (the context's, the target's being down, misuse).
func (t *Target) begin(ctx context.Context) error {
	if err := t.beginAny(ctx); err != nil {
		return err
	}
	if !t.opened {
		t.p.mu.Unlock()
		return t.errorf("%w", errNotOpen)
	}
	return nil
}

// beginAny is begin for the calls that open a handle.
func (t *Target) beginAny(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t.p.mu.Lock()
	if t.p.down != nil {
		err := t.p.down
		t.p.mu.Unlock()
		return target.Down(target.Unavailable, t.errorf("%w", err))
	}
	return nil
}

func (t *Target) end() { t.p.mu.Unlock() }

// errorf is an error of this target: its name, then the detail.
func (t *Target) errorf(format string, args ...any) error {
	return fmt.Errorf("memtarget %s: %w", t.name, fmt.Errorf(format, args...))
}

func (t *Target) nowNano() int64 { return t.p.now().UnixNano() }

// logOp records a change that was applied, for Ops.
func (t *Target) logOp(format string, args ...any) {
	t.p.ops = append(t.p.ops, fmt.Sprintf(format, args...))
}

// Open makes the place a target of brickID, or checks that it is one.
func (t *Target) Open(ctx context.Context, brickID string) error {
	if err := t.beginAny(ctx); err != nil {
		return err
	}
	defer t.end()
	if brickID == "" {
		return t.errorf("open: empty brick id")
	}
	if t.p.brick == "" {
		t.p.brick = brickID
	}
	if err := t.sameBrick(brickID); err != nil {
		return err
	}
	t.opened = true
	return nil
}

// Attach is Open for readers: the place must already be brickID's.
func (t *Target) Attach(ctx context.Context, brickID string) error {
	if err := t.beginAny(ctx); err != nil {
		return err
	}
	defer t.end()
	if t.p.brick == "" {
		return t.errorf("attach: never opened: %w", target.ErrNotTarget)
	}
	if err := t.sameBrick(brickID); err != nil {
		return err
	}
	t.opened = true
	return nil
}

func (t *Target) sameBrick(brickID string) error {
	if t.p.brick != brickID {
		return t.errorf("target of brick %s, not of %s: %w", t.p.brick, brickID, target.ErrOtherBrick)
	}
	return nil
}

// Check fails only while the target is down (SetDown).
func (t *Target) Check(ctx context.Context) error {
	if err := t.beginAny(ctx); err != nil {
		return err
	}
	t.end()
	return nil
}

// Close keeps the handle usable, as a mirror's Close does: the next call
// works again.
func (t *Target) Close() error { return nil }

// Sync makes the tree as it is now what Crash goes back to.
func (t *Target) Sync(ctx context.Context) error {
	if err := t.begin(ctx); err != nil {
		return err
	}
	defer t.end()
	t.p.durable = t.p.live.clone()
	t.p.synced++
	t.logOp("sync")
	return nil
}

// SetStime records the stime; it is durable at once, like the brick id:
// the engine calls it after Sync.
func (t *Target) SetStime(ctx context.Context, st time.Time) error {
	if err := t.begin(ctx); err != nil {
		return err
	}
	defer t.end()
	t.p.stime = st
	t.logOp("stime %s", st.UTC().Format(time.RFC3339Nano))
	return nil
}
