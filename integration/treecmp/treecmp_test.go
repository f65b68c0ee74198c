package treecmp

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkg/xattr"
)

func build(t *testing.T) (string, string) {
	t.Helper()
	d := t.TempDir()
	a := filepath.Join(d, "a")
	for _, p := range []string{"dir/sub", ".replfs/x"} {
		if err := os.MkdirAll(filepath.Join(a, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w := func(p, s string) {
		if err := os.WriteFile(filepath.Join(a, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w("f", "hello world")
	w("dir/g", "content g")
	w("dir/sub/h", "hhhh")
	os.Link(filepath.Join(a, "f"), filepath.Join(a, "dir/f-link"))
	os.Symlink("dir/g", filepath.Join(a, "sl"))
	xattr.Set(filepath.Join(a, "f"), "user.k", []byte("v"))
	xattr.Set(filepath.Join(a, "f"), "trusted.replfs.gfid", []byte("0123456789abcdef"))
	b := filepath.Join(d, "b")
	if out, err := exec.Command("cp", "-a", a, b).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v %s", err, out)
	}
	return a, b
}

func TestIdenticalCopiesHaveNoDiff(t *testing.T) {
	a, b := build(t)
	d, err := Compare(a, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 0 {
		t.Fatal(Report(d, 20))
	}
}

func TestEachInjectedDifferenceIsFound(t *testing.T) {
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, path, kind string
		inject           func(b string) error
	}{
		{"missing", "dir/g", "missing", func(b string) error { return os.Remove(b + "/dir/g") }},
		{"extra", "dir/new", "extra", func(b string) error { return os.WriteFile(b+"/dir/new", nil, 0o644) }},
		{"type", "dir/sub/h", "type", func(b string) error {
			os.Remove(b + "/dir/sub/h")
			return os.Mkdir(b+"/dir/sub/h", 0o755)
		}},
		{"size", "dir/g", "size", func(b string) error {
			fi, _ := os.Stat(b + "/dir/g")
			if err := os.WriteFile(b+"/dir/g", []byte("longer content g"), 0o644); err != nil {
				return err
			}
			return os.Chtimes(b+"/dir/g", fi.ModTime(), fi.ModTime())
		}},
		{"content", "dir/g", "content", func(b string) error {
			fi, _ := os.Stat(b + "/dir/g")
			if err := os.WriteFile(b+"/dir/g", []byte("content G"), 0o644); err != nil {
				return err
			}
			return os.Chtimes(b+"/dir/g", fi.ModTime(), fi.ModTime())
		}},
		{"mode", "dir/sub/h", "mode", func(b string) error { return os.Chmod(b+"/dir/sub/h", 0o600) }},
		{"owner", "dir/sub/h", "owner", func(b string) error { return os.Lchown(b+"/dir/sub/h", 1234, 1234) }},
		{"mtime", "dir/sub/h", "mtime", func(b string) error { return os.Chtimes(b+"/dir/sub/h", old, old) }},
		{"xattr", "dir/sub/h", "xattr", func(b string) error { return xattr.Set(b+"/dir/sub/h", "user.added", []byte("1")) }},
		{"gfid", "dir/sub/h", "xattr", func(b string) error {
			return xattr.Set(b+"/dir/sub/h", "trusted.replfs.gfid", []byte("fedcba9876543210"))
		}},
		{"symlink", "sl", "symlink", func(b string) error {
			os.Remove(b + "/sl")
			if err := os.Symlink("dir/sub/h", b+"/sl"); err != nil {
				return err
			}
			fi, _ := os.Lstat(filepath.Join(filepath.Dir(b), "a", "sl"))
			return exec.Command("touch", "-h", "-d", fi.ModTime().Format(time.RFC3339Nano), b+"/sl").Run()
		}},
		{"hardlink", "dir/f-link", "hardlink", func(b string) error {
			return exec.Command("sh", "-c", "cp -a "+b+"/dir/f-link "+b+"/dir/tmp && mv "+b+"/dir/tmp "+b+"/dir/f-link").Run()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := build(t)
			if err := tc.inject(b); err != nil {
				t.Fatal(err)
			}
			// Directory mtimes change with entries: compare those apart.
			d, err := Compare(a, b, &Options{NoMtime: tc.kind != "mtime"})
			if err != nil {
				t.Fatal(err)
			}
			if len(d) != 1 || d[0].Kind != tc.kind || d[0].Path != tc.path {
				t.Fatalf("want one %s diff at %s, got %s", tc.kind, tc.path, Report(d, 10))
			}
		})
	}
}

func TestIgnoredPartsMakeNoDiff(t *testing.T) {
	a, b := build(t)
	if err := xattr.Set(b+"/f", "trusted.replfs.xtime", []byte("later")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b+"/.replfs/x/state", []byte("only in b"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Compare(a, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 0 {
		t.Fatal(Report(d, 10))
	}
}
