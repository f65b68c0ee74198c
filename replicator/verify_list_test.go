package replicator

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/contenthash"
	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// TestListHashesSmallFilesAndListsTheRestAsBefore: a listing that hashes
// the files below hashBelow gives every entry the attributes, gfid, xattrs
// and symlink target the plain listing gives, and the right sums; a fifo
// is listed as before (without waiting for a writer), and files at or
// above hashBelow are left to hash later.
func TestListHashesSmallFilesAndListsTheRestAsBefore(t *testing.T) {
	b, root := newTestBrick(t, t.TempDir())
	small := []byte("small file content\n")
	big := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB
	write := func(name string, data []byte) {
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, data, 0o640); err != nil {
			t.Fatal(err)
		}
		g := gfid.New()
		if err := unix.Setxattr(p, gfid.XattrTrusted, g[:], 0); err != nil {
			t.Fatal(err)
		}
	}
	write("small", small)
	write("empty", nil)
	write("big", big)
	if err := unix.Setxattr(filepath.Join(root, "small"), "user.color", []byte("blue"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("small", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}

	list := func(hashBelow int64) map[string]target.FullEntry {
		fd, err := openDir(root)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		ents, err := listFullFD(&b.tree, fd, root, true, hashBelow)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]target.FullEntry{}
		for _, e := range ents {
			m[e.Name] = e
		}
		return m
	}
	plain, hashed := list(0), list(int64(len(big)))
	if len(plain) != 6 || len(hashed) != 6 {
		t.Fatalf("listed %d and %d entries, want 6 (.replfs left out): %v", len(plain), len(hashed), hashed)
	}
	for name, p := range plain {
		h := hashed[name]
		p.Attr.Atime, h.Attr.Atime = 0, 0 // the first listing's readlink moves the symlink's
		if p.Hashed || p.Mode != h.Mode || p.GFID != h.GFID || p.Attr != h.Attr || p.Link != h.Link || !xattrsEqual(p.Xattrs, h.Xattrs) {
			t.Errorf("%s: plain listing %+v, hashing listing %+v", name, p, h)
		}
	}
	if x := hashed["small"].Xattrs; string(x["user.color"]) != "blue" || len(x) != 1 {
		t.Errorf("small: xattrs %v, want only user.color=blue", x)
	}
	for name, data := range map[string][]byte{"small": small, "empty": nil} {
		e := hashed[name]
		if !e.Hashed || e.HashErr != nil || e.N != int64(len(data)) || e.Sum != contenthash.Bytes(data) {
			t.Errorf("%s: hashed %v, %d bytes, err %v, sum %s; want %s", name, e.Hashed, e.N, e.HashErr, e.Sum, contenthash.Bytes(data))
		}
	}
	for _, name := range []string{"big", "fifo", "link", "sub"} {
		if hashed[name].Hashed {
			t.Errorf("%s was hashed by the listing", name)
		}
	}
}
