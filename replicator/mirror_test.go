package replicator

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
)

// WriteFile replaces a file's content by renaming a new inode over its
// name, which changes the directory's times; it puts them back, since a
// content update must not change its directory. The sync-jobs pool runs
// WriteFile for several files at once: updates of files in one directory
// must still leave that directory's times as they found them.
func TestMirrorParallelWriteFilesKeepDirectoryTimes(t *testing.T) {
	root := t.TempDir()
	m := NewMirror(filepath.Join(root, "mirror"))
	if err := os.Mkdir(m.path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.Open("brick-" + gfid.New().String()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	now := time.Now().UnixNano()
	dirG := gfid.New()
	if err := m.Make(gfid.Root, "d", dirG, Attr{Mode: sIFDIR | 0o755, Atime: now, Mtime: now}, "", nil); err != nil {
		t.Fatal(err)
	}
	const files = 8
	src := filepath.Join(root, "src")
	if err := os.WriteFile(src, []byte(strings.Repeat("x", 64<<10)), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func() *os.File {
		f, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	var gs []gfid.GFID
	for i := range files {
		g := gfid.New()
		f := open()
		a := Attr{Mode: sIFREG | 0o644, Size: 64 << 10, Atime: now, Mtime: now}
		if _, err := m.CreateFile(dirG, fmt.Sprintf("f%d", i), g, f, a, nil); err != nil {
			t.Fatal(err)
		}
		f.Close()
		gs = append(gs, g)
	}
	dir := filepath.Join(m.path, "d")
	want := time.Unix(0, now-int64(time.Hour)).Truncate(time.Microsecond)
	ts := []unix.Timespec{unix.NsecToTimespec(want.UnixNano()), unix.NsecToTimespec(want.UnixNano())}

	for round := range 50 {
		if err := unix.UtimesNano(dir, ts); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, g := range gs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f := open()
				defer f.Close()
				a := Attr{Mode: sIFREG | 0o644, Size: 64 << 10, Atime: now, Mtime: now + int64(round)}
				if _, err := m.WriteFile(g, f, a, nil); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		var st unix.Stat_t
		if err := unix.Lstat(dir, &st); err != nil {
			t.Fatal(err)
		}
		if got := time.Unix(0, st.Mtim.Nano()); !got.Equal(want) {
			t.Fatalf("round %d: after %d parallel content updates, the directory's mtime is %v, want %v (unchanged)",
				round, files, got, want)
		}
	}
}
