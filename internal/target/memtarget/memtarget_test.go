package memtarget_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/contenthash"
	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
	"github.com/replfs/replfs/internal/target/memtarget"
	"github.com/replfs/replfs/internal/target/targettest"
)

func TestConformance(t *testing.T) {
	targettest.Run(t, func(t *testing.T) targettest.Harness {
		m := memtarget.New("mem")
		return targettest.Harness{
			Target: m,
			// A restart finds what the last Sync made durable.
			Reopen:          func(t *testing.T) target.Target { m.Crash(); return m.Reopen() },
			MakeUnavailable: func(t *testing.T) { m.SetDown(errors.New("unplugged")) },
		}
	})
}

const brick = "brick-1"

func opened(t *testing.T) (*memtarget.Target, context.Context) {
	t.Helper()
	m := memtarget.New("mem")
	if err := m.Open(t.Context(), brick); err != nil {
		t.Fatal(err)
	}
	return m, t.Context()
}

func file(t *testing.T, m *memtarget.Target, parent gfid.GFID, name, content string) gfid.GFID {
	t.Helper()
	g := gfid.New()
	a := target.Attr{Mode: unix.S_IFREG | 0o644, Mtime: 1e18}
	if _, err := m.CreateFile(t.Context(), parent, name, g, memtarget.BytesSource(name, []byte(content)), a, nil); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestSetDownFailsEveryCallUntilCleared(t *testing.T) {
	m, ctx := opened(t)
	cause := errors.New("cable pulled")
	m.SetDown(cause)
	for name, err := range map[string]error{
		"Check": m.Check(ctx),
		"Open":  m.Open(ctx, brick),
		"Make":  m.Make(ctx, gfid.Root, "d", gfid.New(), target.Attr{Mode: unix.S_IFDIR | 0o755}, "", nil),
		"Sync":  m.Sync(ctx),
	} {
		if !target.IsDown(err) || !errors.Is(err, cause) {
			t.Errorf("%s while down: %v; want a Down error wrapping the cause", name, err)
		}
	}
	m.SetDown(nil)
	if err := m.Check(ctx); err != nil {
		t.Errorf("Check after SetDown(nil): %v", err)
	}
	if len(m.Snapshot()) != 1 {
		t.Errorf("calls made while down changed the tree: %v", m.Snapshot())
	}
}

func TestFailEntryFailsOnlyThatEntry(t *testing.T) {
	m, ctx := opened(t)
	d := gfid.New()
	if err := m.Make(ctx, gfid.Root, "d", d, target.Attr{Mode: unix.S_IFDIR | 0o755}, "", nil); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("no space for this one")
	m.FailEntry("bad", boom)
	m.FailEntry("d/path-bad", boom)
	for _, name := range []string{"bad", "path-bad"} {
		if err := m.Make(ctx, d, name, gfid.New(), target.Attr{Mode: unix.S_IFREG | 0o644}, "", nil); !errors.Is(err, boom) {
			t.Errorf("Make d/%s: %v; want the injected error", name, err)
		}
	}
	x := file(t, m, d, "good", "x")
	if err := m.Rename(ctx, x, d, "good", d, "bad"); !errors.Is(err, boom) {
		t.Errorf("Rename onto the failing name: %v", err)
	}
	if _, ok := m.Snapshot()["d/good"]; !ok || target.IsDown(boom) {
		t.Errorf("a refused rename moved d/good")
	}
	m.FailEntry("bad", nil)
	if err := m.Rename(ctx, x, d, "good", d, "bad"); err != nil {
		t.Errorf("Rename after FailEntry(nil): %v", err)
	}
}

func TestOpsLogAppliedChangesInOrder(t *testing.T) {
	m, ctx := opened(t)
	d := gfid.New()
	m.Make(ctx, gfid.Root, "d", d, target.Attr{Mode: unix.S_IFDIR | 0o755}, "", nil)
	x := file(t, m, d, "x", "x")
	m.Make(ctx, gfid.Root, "d", gfid.New(), target.Attr{Mode: unix.S_IFDIR | 0o755}, "", nil) // refused: not logged
	m.Link(ctx, x, gfid.Root, "x2")
	m.Rename(ctx, x, d, "x", gfid.Root, "y")
	m.Aside(ctx, gfid.Root, "y", x)
	m.EmptyLimbo(ctx)
	m.Unlink(ctx, gfid.Root, "x2", x)
	m.Sync(ctx)
	st := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	m.SetStime(ctx, st)
	want := []string{"make d", "create d/x", "link d/x -> x2", "rename d/x -> y", "aside y",
		"emptylimbo 1", "unlink x2", "sync", "stime 2024-01-02T03:04:05.000000006Z"}
	if got := m.Ops(); !slices.Equal(got, want) {
		t.Errorf("Ops:\n got %q\nwant %q", got, want)
	}
	if !m.Stime().Equal(st) || m.Synced() != 1 {
		t.Errorf("Stime %s Synced %d", m.Stime(), m.Synced())
	}
}

func TestSnapshotShowsTreeAndLimbo(t *testing.T) {
	m, ctx := opened(t)
	x := file(t, m, gfid.Root, "x", "content")
	hl := file(t, m, gfid.Root, "aside", "a")
	m.Link(ctx, x, gfid.Root, "x2")
	m.Aside(ctx, gfid.Root, "aside", hl)
	snap := m.Snapshot()
	e, e2 := snap["x"], snap["x2"]
	if e.Type != unix.S_IFREG || e.GFID != x || e.Sum != contenthash.Bytes([]byte("content")) || e.Size != 7 || e.Mode != 0o644 {
		t.Errorf("snapshot of x: %+v", e)
	}
	if !e.Equal(e2) {
		t.Errorf("two names of one inode differ: %+v, %+v", e, e2)
	}
	if _, ok := snap[".replfs/limbo/"+hl.String()]; !ok {
		t.Errorf("snapshot does not show limbo: %v", snap)
	}
	if len(snap) != 4 {
		t.Errorf("snapshot has %d paths, want . x x2 and the limbo entry", len(snap))
	}
}

func TestCrashLosesWhatWasNotSynced(t *testing.T) {
	m, ctx := opened(t)
	file(t, m, gfid.Root, "kept", "k")
	m.Sync(ctx)
	file(t, m, gfid.Root, "lost", "l")
	m.Crash()
	r := m.Reopen()
	if err := r.Attach(ctx, brick); err != nil {
		t.Fatal(err)
	}
	if err := r.Attach(ctx, "other"); !errors.Is(err, target.ErrOtherBrick) {
		t.Errorf("Attach for another brick after a crash: %v", err)
	}
	snap := r.Snapshot()
	if _, ok := snap["kept"]; !ok {
		t.Errorf("the synced file is gone after a crash")
	}
	if _, ok := snap["lost"]; ok {
		t.Errorf("the file made after the last Sync survived a crash")
	}
}

func TestUnindexedDirectoryIsStaleUntilRepointed(t *testing.T) {
	m, ctx := opened(t)
	d := gfid.New()
	m.Make(ctx, gfid.Root, "d", d, target.Attr{Mode: unix.S_IFDIR | 0o755}, "", nil)
	m.Unindex(d)
	if _, err := m.List(ctx, d, 0); !errors.Is(err, target.ErrIndexStale) {
		t.Errorf("List of an unindexed directory: %v; want ErrIndexStale", err)
	}
	if _, err := m.Stat(ctx, d); !errors.Is(err, target.ErrNotExist) {
		t.Errorf("Stat of an unindexed directory: %v", err)
	}
	if err := m.Repoint(ctx, d, gfid.Root, "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.List(ctx, d, 0); err != nil {
		t.Errorf("List after Repoint: %v", err)
	}
}

func TestUseBeforeOpenIsRefused(t *testing.T) {
	m := memtarget.New("mem")
	if _, err := m.Stat(t.Context(), gfid.Root); err == nil {
		t.Errorf("Stat before Open succeeded")
	}
	if err := m.Attach(t.Context(), brick); !errors.Is(err, target.ErrNotTarget) {
		t.Errorf("Attach of a place never opened: %v", err)
	}
}
