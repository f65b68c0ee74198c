package integration

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// snapshot lists every path under dir with its size, mode and mtime.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		fmt.Fprintf(&b, "%s %d %v %d\n", p, fi.Size(), fi.Mode(), fi.ModTime().UnixNano())
		return nil
	})
	return b.String()
}

// sameTree reports the lines that differ between two snapshots.
func sameTree(t *testing.T, before, after string) {
	t.Helper()
	b, a := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(before, "\n") {
		b[l] = true
	}
	for _, l := range strings.Split(after, "\n") {
		a[l] = true
		if !b[l] {
			t.Errorf("changed or new: %s", l)
		}
	}
	for l := range b {
		if !a[l] {
			t.Errorf("gone or changed: %s", l)
		}
	}
}

func expectOneLineError(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d (stderr %q)", r.code, code, r.stderr)
	}
	msg := strings.TrimSpace(r.stderr)
	if strings.Count(msg, "\n") != 0 {
		t.Errorf("error is not one line: %q", msg)
	}
	if !strings.Contains(msg, want) {
		t.Errorf("error %q does not say %q", msg, want)
	}
}

func TestBadMountInputGivesClearErrorAndChangesNothing(t *testing.T) {
	requireFUSE(t)
	f := newFixture(t)
	writeFile(t, f.b("keep"), "data")
	file := filepath.Join(f.Root, "plainfile")
	writeFile(t, file, "x")
	before := snapshot(t, f.Root)

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown option", []string{"mount", f.Brick, f.Mnt, "-o", "rw,frobnicate"}, 2, `unknown mount option "frobnicate"`},
		{"bad duration", []string{"mount", f.Brick, f.Mnt, "-o", "rollover=soon"}, 2, `"soon" is not a duration`},
		{"missing brick", []string{"mount", filepath.Join(f.Root, "nope"), f.Mnt}, 1, "does not exist"},
		{"brick is a file", []string{"mount", file, f.Mnt}, 1, "is not a directory"},
		{"missing mountpoint", []string{"mount", f.Brick, filepath.Join(f.Root, "nomnt")}, 1, "does not exist"},
		{"mountpoint is a file", []string{"mount", f.Brick, file}, 1, "is not a directory"},
		{"brick inside mountpoint", []string{"mount", f.Mnt, f.Root}, 1, "must not contain each other"},
		{"one argument", []string{"mount", f.Brick}, 2, "needs BRICK and MOUNTPOINT"},
		{"dump of a non-brick", []string{"journal", "dump", f.Mnt}, 1, "is not a replfs brick"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectOneLineError(t, run(t, tc.args...), tc.code, tc.want)
		})
	}
	sameTree(t, before, snapshot(t, f.Root))
}

func TestMountpointInUseAndBrickAlreadyMounted(t *testing.T) {
	f := newFixture(t)
	f.mount(t)
	writeFile(t, f.m("x"), "1")

	// A second brick onto the busy mountpoint.
	other := filepath.Join(f.Root, "brick2")
	must(t, os.Mkdir(other, 0o755))
	expectOneLineError(t, run(t, "mount", other, f.Mnt), 1, "already in use")
	if ents, _ := os.ReadDir(other); len(ents) != 0 {
		t.Errorf("failed mount wrote into the other brick: %v", ents)
	}

	// The same brick at a second mountpoint.
	mnt2 := filepath.Join(f.Root, "mnt2")
	must(t, os.Mkdir(mnt2, 0o755))
	before := snapshot(t, filepath.Join(f.Brick, ".replfs/journal"))
	expectOneLineError(t, run(t, "mount", f.Brick, mnt2), 1, "already mounted by another replfs")
	if isMounted(mnt2) {
		syscall.Unmount(mnt2, syscall.MNT_DETACH)
		t.Fatal("brick mounted twice")
	}
	if after := snapshot(t, filepath.Join(f.Brick, ".replfs/journal")); after != before {
		t.Error("refused mount changed the journal")
	}
}

func TestCorruptJournalRefusesMount(t *testing.T) {
	f := newFixture(t)
	f.mount(t, "rollover=50ms")
	for i := 0; i < 20; i++ {
		writeFile(t, f.m(fmt.Sprintf("f%d", i)), "x")
	}
	f.unmount(t)
	segs, _ := filepath.Glob(f.b(".replfs/journal/*.rjl"))
	if len(segs) == 0 {
		t.Fatal("no sealed segment")
	}
	seg := segs[0]
	data, err := os.ReadFile(seg)
	must(t, err)
	data[len(data)/2] ^= 0xff // a flipped byte inside a sealed segment
	must(t, os.WriteFile(seg, data, 0o600))
	before := snapshot(t, f.Brick)

	r := run(t, "mount", f.Brick, f.Mnt)
	if r.code == 0 {
		f.unmountQuiet(t)
		t.Fatal("mounted a brick with a corrupt journal")
	}
	expectOneLineError(t, r, 1, "corrupt")
	if !strings.Contains(r.stderr, filepath.Base(seg)) {
		t.Errorf("error does not name the segment %s: %q", filepath.Base(seg), r.stderr)
	}
	sameTree(t, before, snapshot(t, f.Brick))
	expectOneLineError(t, run(t, "journal", "dump", f.Brick), 1, "corrupt")
}
