package fs

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/replfs/replfs/internal/gfid"
)

func TestXtimeCodecRoundTrip(t *testing.T) {
	ns := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC).UnixNano()
	var b [12]byte
	encodeXtime(&b, ns)
	got, err := DecodeXtime(b[:])
	if err != nil || got != ns {
		t.Fatalf("DecodeXtime = %d, %v; want %d", got, err, ns)
	}
	if _, err := DecodeXtime(b[:8]); err == nil {
		t.Fatal("short xtime accepted")
	}
}

// TestDirPointersResolveAfterRename builds an index by hand-free calls and
// resolves a nested directory's path from its gfid, before and after its
// parent is "renamed".
func TestDirPointersResolveAfterRename(t *testing.T) {
	brick := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(brick, gfid.IndexDir), 0o700))
	b := &Brick{Path: brick, GFIDXattr: gfid.XattrUser}
	idx, err := openIndex(b)
	must(err)
	defer idx.close()
	a, c := gfid.New(), gfid.New()
	must(idx.setDir(gfid.Root, gfid.Root, ""))
	must(idx.setDir(a, gfid.Root, "a"))
	must(idx.setDir(c, a, "c"))
	must(os.MkdirAll(filepath.Join(brick, "a/c"), 0o755))
	if p, err := DirPath(brick, c); err != nil || p != "a/c" {
		t.Fatalf("DirPath = %q, %v", p, err)
	}
	// Kernel resolution of the pointer chain reaches the same directory.
	if real, err := filepath.EvalSymlinks(filepath.Join(brick, c.IndexPath())); err != nil || real != filepath.Join(brick, "a/c") {
		t.Fatalf("EvalSymlinks = %q, %v", real, err)
	}
	must(os.Rename(filepath.Join(brick, "a"), filepath.Join(brick, "z")))
	must(idx.setDir(a, gfid.Root, "z"))
	if p, err := DirPath(brick, c); err != nil || p != "z/c" {
		t.Fatalf("after rename DirPath = %q, %v", p, err)
	}
	must(idx.remove(c))
	if _, err := DirPath(brick, c); err == nil {
		t.Fatal("removed entry still resolves")
	}
}

func TestDropIfLastKeepsLinkedFiles(t *testing.T) {
	brick := t.TempDir()
	if err := os.MkdirAll(filepath.Join(brick, gfid.IndexDir), 0o700); err != nil {
		t.Fatal(err)
	}
	idx, err := openIndex(&Brick{Path: brick})
	if err != nil {
		t.Fatal(err)
	}
	defer idx.close()
	g := gfid.New()
	p := filepath.Join(brick, "f")
	os.WriteFile(p, []byte("x"), 0o644)
	if err := idx.addLink(g, p); err != nil {
		t.Fatal(err)
	}
	if err := idx.dropIfLast(g); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(brick, g.IndexPath())); err != nil {
		t.Fatal("entry of a file that still has a name was dropped")
	}
	os.Remove(p)
	if err := idx.dropIfLast(g); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(brick, g.IndexPath())); !os.IsNotExist(err) {
		t.Fatal("entry of a file with no name left was kept")
	}
}
