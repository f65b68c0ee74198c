package replicator

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
	"github.com/replfs/replfs/internal/target/targettest"
)

// The directory mirror passes the conformance suite every target kind
// runs, tampered-with mirrors included.
func TestMirrorConformance(t *testing.T) {
	targettest.Run(t, func(t *testing.T) targettest.Harness {
		outside := t.TempDir()
		dir := filepath.Join(outside, "mirror")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		away := t.TempDir()
		return targettest.Harness{
			Target:          NewMirror(dir),
			Reopen:          func(t *testing.T) target.Target { return NewMirror(dir) },
			MakeUnavailable: func(t *testing.T) { os.Rename(dir, filepath.Join(away, "gone")) },
			Outside:         outside,
			TargetDir:       dir,
			Tamper:          mirrorTamper(dir),
		}
	})
}

// mirrorTamper changes a mirror's disk behind its back, as whoever can
// write it may.
func mirrorTamper(dir string) *targettest.Tamper {
	replace := func(t *testing.T, p, to string) {
		t.Helper()
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(to, p); err != nil {
			t.Fatal(err)
		}
	}
	return &targettest.Tamper{
		ReplaceDirWithSymlink: func(t *testing.T, rel, to string) { replace(t, filepath.Join(dir, rel), to) },
		ReplaceStateDirWithSymlink: func(t *testing.T, which targettest.StateDir, to string) {
			replace(t, filepath.Join(dir, gfid.StateDir, string(which)), to)
		},
		RewritePointer: func(t *testing.T, g gfid.GFID, to string) { replace(t, filepath.Join(dir, g.IndexPath()), to) },
	}
}
