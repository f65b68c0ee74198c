package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	rfs "github.com/replfs/replfs/fs"
	"github.com/replfs/replfs/internal/contenthash"
	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
	"github.com/replfs/replfs/replicator"
)

// failingTarget is a mirror whose reads of one file fail with EIO, as a
// disk with a bad sector would.
type failingTarget struct {
	*replicator.Mirror
	bad     gfid.GFID
	badDir  gfid.GFID
	badName string
}

func (f failingTarget) HashDir(ctx context.Context, dir gfid.GFID, reqs []target.HashReq) error {
	err := f.Mirror.HashDir(ctx, dir, reqs)
	for i := range reqs {
		if dir == f.badDir && reqs[i].Name == f.badName {
			reqs[i].Err = &os.PathError{Op: "read", Path: "bad", Err: syscall.EIO}
		}
	}
	return err
}

func (f failingTarget) List(ctx context.Context, dir gfid.GFID, hashBelow int64) ([]target.FullEntry, error) {
	ents, err := f.Mirror.List(ctx, dir, hashBelow)
	for i := range ents {
		if dir == f.badDir && ents[i].Name == f.badName && ents[i].Hashed {
			ents[i].Sum, ents[i].N = contenthash.Sum{}, 0
			ents[i].HashErr = &os.PathError{Op: "read", Path: "bad", Err: syscall.EIO}
		}
	}
	return ents, err
}

func (f failingTarget) Hash(ctx context.Context, g gfid.GFID, size int64) (contenthash.Sum, int64, error) {
	if g == f.bad {
		return contenthash.Sum{}, 0, &os.PathError{Op: "read", Path: "bad", Err: syscall.EIO}
	}
	return f.Mirror.Hash(ctx, g, size)
}

// An unreadable entry is reported with its path and error, and the walk
// goes on: the other files are still compared.
func TestVerifyReportsUnreadableAndKeepsWalking(t *testing.T) {
	f := newFixture(t)
	mir := f.mirrorDir(t, "mirror")
	for _, d := range []string{"a", "b", "c"} {
		must(t, os.MkdirAll(f.b(d), 0o755))
		for _, n := range []string{"1", "2", "3"} {
			writeFile(t, f.b(d+"/f"+n), strings.Repeat(d+n, 1000))
		}
	}
	f.mount(t, "mirror="+mir)
	converge(t, f.Brick, mir, 30*time.Second)
	f.unmount(t)

	must(t, os.Chmod(filepath.Join(mir, "c/f3"), 0o600)) // one real difference after the bad file
	b, err := rfs.ReadBrick(f.Brick)
	must(t, err)
	m := replicator.NewMirror(mir)
	must(t, m.Attach(context.Background(), b.Info.ID))
	bad := gfidAt(t, f.b("b/f2"))
	var errs []replicator.VerifyError
	var ds []replicator.Difference
	v := replicator.NewVerifier(replicator.BrickRef{Root: b.Path, ID: b.Info.ID, GFIDXattr: b.GFIDXattr, XtimeXattr: b.XtimeXattr},
		failingTarget{m, bad, gfidAt(t, f.b("b")), "f2"}, replicator.VerifyOptions{Checksum: true, Workers: 1,
			OnDiff:  func(d replicator.Difference) { ds = append(ds, d) },
			OnError: func(e replicator.VerifyError) { errs = append(errs, e) }})
	sum, err := v.Run(context.Background())
	must(t, err)
	if len(errs) != 1 || errs[0].Path != "b/f2" || !strings.Contains(errs[0].Err, "input/output error") {
		t.Fatalf("errors %+v, want one for b/f2 with the I/O error", errs)
	}
	if len(ds) != 1 || ds[0].Path != "c/f3" || ds[0].Kind != replicator.DiffMode {
		t.Fatalf("differences %+v, want the mode of c/f3 (found after the bad file)", ds)
	}
	if sum.Errors != 1 || sum.Files != 9 || sum.Entries != 13 {
		t.Fatalf("summary %+v: want 1 error, 9 files, 13 entries (root, 3 dirs, 9 files)", sum)
	}
}
