package options

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCheckSeparateSeesThroughSpellings(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"brick/inner", "mnt", "x/sub", "y"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := func(rel string) string { return filepath.Join(root, rel) }
	if err := os.Symlink(p("brick"), p("L")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(p("x"), p("xlink")); err != nil {
		t.Fatal(err)
	}
	brick, mnt := Dir{"brick", p("brick")}, Dir{"mountpoint", p("mnt")}
	mirror := func(path string) Dir { return Dir{"mirror", path} }
	for _, tc := range []struct {
		name string
		dirs []Dir
		want string // "" = accepted
	}{
		{"separate", []Dir{brick, mnt, mirror(p("x")), mirror(p("y"))}, ""},
		{"mountpoint inside the brick through a symlink", []Dir{brick, {"mountpoint", p("L/inner")}},
			"mountpoint " + p("L/inner") + " is inside the brick " + p("brick") + " (it is " + p("brick/inner") + ")"},
		{"mountpoint is the brick", []Dir{brick, {"mountpoint", p("L")}}, "is inside the brick"},
		{"brick inside the mountpoint", []Dir{{"brick", p("mnt")}, {"mountpoint", root}}, "brick " + p("mnt") + " is inside the mountpoint"},
		{"mirror inside a mirror", []Dir{brick, mnt, mirror(p("x")), mirror(p("x/sub"))}, "mirror " + p("x/sub") + " is inside the mirror " + p("x")},
		{"mirror containing a mirror", []Dir{brick, mnt, mirror(p("x/sub")), mirror(p("x"))}, "mirror " + p("x/sub") + " is inside the mirror " + p("x")},
		{"trailing slash", []Dir{brick, mnt, mirror(p("x")), mirror(p("x") + "/")}, "is the same directory as mirror " + p("x")},
		{"symlinked mirror", []Dir{brick, mnt, mirror(p("x")), mirror(p("xlink"))}, "mirror " + p("xlink") + " is the same directory as mirror " + p("x") + " (it is " + p("x") + "); name each mirror once"},
		{"dot-dot", []Dir{brick, mnt, mirror(p("y")), mirror(p("x/sub/../../y"))}, "is the same directory"},
		{"mirror inside the brick", []Dir{brick, mnt, mirror(p("L/inner"))}, "mirror " + p("L/inner") + " is inside the brick"},
		{"mirror containing the brick", []Dir{brick, mnt, mirror(root)}, "brick " + p("brick") + " is inside the mirror " + root},
		{"mirror containing the mountpoint", []Dir{mnt, mirror(root)}, "mountpoint " + p("mnt") + " is inside the mirror " + root},
		{"mirror is the mountpoint", []Dir{brick, mnt, mirror(p("mnt"))}, "mirror " + p("mnt") + " is inside the mountpoint " + p("mnt") + " (the same directory)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSeparate(tc.dirs)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// A bind mount is another path to the same inode, and the mount's ".."
// leads to where it is mounted: both are caught.
func TestCheckSeparateSeesThroughBindMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bind mounts need root")
	}
	root := t.TempDir()
	p := func(rel string) string { return filepath.Join(root, rel) }
	for _, d := range []string{"brick", "mnt", "x", "alias"} {
		if err := os.Mkdir(p(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount(p("x"), p("alias"), "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(p("alias"), unix.MNT_DETACH) })
	if err := os.Mkdir(p("x/inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	brick, mnt := Dir{"brick", p("brick")}, Dir{"mountpoint", p("mnt")}
	err := CheckSeparate([]Dir{brick, mnt, {"mirror", p("x")}, {"mirror", p("alias")}})
	if err == nil || !strings.Contains(err.Error(), "is the same directory as mirror") {
		t.Errorf("bind-mounted alias of a mirror: %v", err)
	}
	err = CheckSeparate([]Dir{brick, mnt, {"mirror", p("x")}, {"mirror", p("alias/inner")}})
	if err == nil || !strings.Contains(err.Error(), "is inside the mirror") {
		t.Errorf("mirror inside a bind-mounted alias of a mirror: %v", err)
	}
}
