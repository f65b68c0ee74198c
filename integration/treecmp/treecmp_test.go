package treecmp

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"
)

var (
	gfidA = []byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f")
	gfidB = []byte("\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff")
	gfidC = []byte("\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f")
)

// tree is a reference tree A and its copy B, identical except for their
// ".replfs" directories (which hold different extra hard links).
type tree struct {
	a, b    string
	devices bool // whether the character device "cdev" could be made
}

// build makes the reference tree and copies it with cp -a. Every entry,
// roots included, gets its own nanosecond mtime.
func build(t *testing.T) tree {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: trusted.* xattrs, chown, mknod")
	}
	tmp := t.TempDir()
	tr := tree{a: filepath.Join(tmp, "a"), b: filepath.Join(tmp, "b")}
	a := tr.a
	must(t, os.Mkdir(a, 0o755))
	must(t, os.MkdirAll(filepath.Join(a, "dir/sub"), 0o755))
	must(t, os.Mkdir(filepath.Join(a, "sticky"), 0o755))
	must(t, unix.Chmod(filepath.Join(a, "sticky"), 0o1777)) // os.Chmod would drop 01000
	writeFile(t, filepath.Join(a, "f"), "hello world", 0o644)
	writeFile(t, filepath.Join(a, "dir/g"), "content g", 0o640)
	writeFile(t, filepath.Join(a, "dir/sub/h"), "hhhh", 0o644)
	writeFile(t, filepath.Join(a, "c1"), "twin", 0o644)
	writeFile(t, filepath.Join(a, "c2"), "twin", 0o644)
	writeFile(t, filepath.Join(a, "suid"), "#!/bin/sh\n", 0o755)
	must(t, unix.Chmod(filepath.Join(a, "suid"), 0o4755))
	must(t, os.Link(filepath.Join(a, "f"), filepath.Join(a, "dir/f-link")))
	must(t, os.Symlink("dir/g", filepath.Join(a, "sl")))
	must(t, unix.Mkfifo(filepath.Join(a, "fifo"), 0o600))
	tr.devices = unix.Mknod(filepath.Join(a, "cdev"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))) == nil

	must(t, xattr.LSet(filepath.Join(a, "f"), "user.k", []byte("v")))
	must(t, xattr.LSet(filepath.Join(a, "f"), "trusted.replfs.gfid", gfidA))
	must(t, xattr.LSet(filepath.Join(a, "dir/sub/h"), "trusted.replfs.gfid", gfidB))
	must(t, xattr.LSet(filepath.Join(a, "sl"), "trusted.replfs.gfid", gfidC)) // no user.* on symlinks
	must(t, xattr.LSet(filepath.Join(a, "dir/g"), "user.test", []byte("orig")))
	must(t, xattr.LSet(filepath.Join(a, "dir/g"), "trusted.replfs.xtime", []byte("1")))
	must(t, xattr.LSet(filepath.Join(a, "dir"), "user.dirattr", []byte("d")))
	for _, c := range []string{"c1", "c2"} {
		must(t, xattr.LSet(filepath.Join(a, c), "user.twin", []byte("same")))
	}

	// The brick's state directory: a gfid index adding a link to f.
	must(t, os.MkdirAll(filepath.Join(a, ".replfs/gfid"), 0o700))
	must(t, os.Link(filepath.Join(a, "f"), filepath.Join(a, ".replfs/gfid/00010203")))

	var paths []string
	must(t, filepath.WalkDir(a, func(p string, _ fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	base := time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)
	for i, p := range paths {
		setMtime(t, p, base.Add(time.Duration(i)*time.Hour+time.Duration(123456789+i)))
	}
	// Twins, which a hard link may join without changing anything else.
	c1 := mtime(t, filepath.Join(a, "c1"))
	setMtime(t, filepath.Join(a, "c2"), time.Unix(c1.Unix()))

	if out, err := exec.Command("cp", "-a", a, tr.b).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	// The mirror's own state directory: other links, another link count.
	keepMtime(t, tr.b, func() {
		must(t, os.RemoveAll(filepath.Join(tr.b, ".replfs")))
		must(t, os.MkdirAll(filepath.Join(tr.b, ".replfs/gfid"), 0o700))
		must(t, os.Link(filepath.Join(tr.b, "dir/g"), filepath.Join(tr.b, ".replfs/gfid/aa")))
		writeFile(t, filepath.Join(tr.b, ".replfs/state"), "mirror only", 0o600)
	})
	return tr
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, content string, perm os.FileMode) {
	t.Helper()
	must(t, os.WriteFile(p, []byte(content), perm))
}

func mtime(t *testing.T, p string) unix.Timespec {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(p, &st))
	return st.Mtim
}

func setMtime(t *testing.T, p string, tm time.Time) {
	t.Helper()
	ts := unix.NsecToTimespec(tm.UnixNano())
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
}

// keepMtime runs f and puts back the mtime that p had before.
func keepMtime(t *testing.T, p string, f func()) {
	t.Helper()
	ts := mtime(t, p)
	f()
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
}

// replace runs f, which replaces name in B, keeping the mtimes of name and
// of its directory.
func replace(t *testing.T, b, name string, f func(p string)) {
	t.Helper()
	p := filepath.Join(b, name)
	keepMtime(t, filepath.Dir(p), func() {
		ts := mtime(t, p)
		f(p)
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
	})
}

func compare(t *testing.T, tr tree, o *Options) []Diff {
	t.Helper()
	d, err := Compare(tr.a, tr.b, o)
	if err != nil {
		t.Fatalf("Compare: %v", err)
	}
	return d
}

func TestIdenticalCopiesHaveNoDiff(t *testing.T) {
	tr := build(t)
	// The fixture is what it claims: link counts differ (.replfs), modes
	// carry setuid and sticky bits.
	for _, c := range []struct {
		p     string
		nlink uint64
		mode  uint32
	}{
		{tr.a + "/f", 3, 0o644}, {tr.b + "/f", 2, 0o644},
		{tr.a + "/dir/g", 1, 0o640}, {tr.b + "/dir/g", 2, 0o640},
		{tr.a + "/suid", 1, 0o4755}, {tr.a + "/sticky", 2, 0o1777},
	} {
		var st unix.Stat_t
		must(t, unix.Lstat(c.p, &st))
		if st.Nlink != c.nlink || st.Mode&0o7777 != c.mode {
			t.Fatalf("%s: nlink %d mode %o, want %d %o", c.p, st.Nlink, st.Mode&0o7777, c.nlink, c.mode)
		}
	}
	if d := compare(t, tr, nil); len(d) != 0 {
		t.Fatal(Report(d, 20))
	}
	// Same the other way round, and against itself.
	if d, err := Compare(tr.b, tr.a, nil); err != nil || len(d) != 0 {
		t.Fatalf("b vs a: %v %s", err, Report(d, 20))
	}
	if d, err := Compare(tr.a, tr.a, nil); err != nil || len(d) != 0 {
		t.Fatalf("a vs a: %v %s", err, Report(d, 20))
	}
}

func TestEachDifferenceIsFoundOnce(t *testing.T) {
	old := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	for _, tc := range []struct {
		name    string
		opt     *Options
		devices bool // needs the character device
		inject  func(t *testing.T, b string)
		want    *Diff // nil: no difference
	}{
		{name: "missing file", inject: func(t *testing.T, b string) {
			keepMtime(t, b+"/dir", func() { must(t, os.Remove(b+"/dir/g")) })
		}, want: &Diff{Path: "dir/g", Kind: KindMissing, A: "file"}},
		{name: "missing dir", inject: func(t *testing.T, b string) {
			keepMtime(t, b+"/dir", func() { must(t, os.RemoveAll(b+"/dir/sub")) })
		}, want: &Diff{Path: "dir/sub", Kind: KindMissing, A: "dir"}},
		{name: "extra file", inject: func(t *testing.T, b string) {
			keepMtime(t, b+"/dir", func() { writeFile(t, b+"/dir/new", "", 0o644) })
		}, want: &Diff{Path: "dir/new", Kind: KindExtra, B: "file"}},
		{name: "type change", inject: func(t *testing.T, b string) {
			replace(t, b, "dir/sub/h", func(p string) {
				must(t, os.Remove(p))
				must(t, os.Mkdir(p, 0o644))
			})
		}, want: &Diff{Path: "dir/sub/h", Kind: KindType, A: "file", B: "dir"}},
		{name: "size change", inject: func(t *testing.T, b string) {
			replace(t, b, "dir/g", func(p string) { writeFile(t, p, "longer content g", 0) })
		}, want: &Diff{Path: "dir/g", Kind: KindSize, A: "9", B: "16"}},
		{name: "content change", inject: func(t *testing.T, b string) {
			replace(t, b, "dir/g", func(p string) { writeFile(t, p, "content G", 0) })
		}, want: &Diff{Path: "dir/g", Kind: KindContent}},
		{name: "mode change", inject: func(t *testing.T, b string) {
			must(t, os.Chmod(b+"/dir/sub/h", 0o600))
		}, want: &Diff{Path: "dir/sub/h", Kind: KindMode, A: "0644", B: "0600"}},
		{name: "setuid lost", inject: func(t *testing.T, b string) {
			must(t, unix.Chmod(b+"/suid", 0o755))
		}, want: &Diff{Path: "suid", Kind: KindMode, A: "4755", B: "0755"}},
		{name: "sticky lost", inject: func(t *testing.T, b string) {
			must(t, unix.Chmod(b+"/sticky", 0o777))
		}, want: &Diff{Path: "sticky", Kind: KindMode, A: "1777", B: "0777"}},
		{name: "owner change", inject: func(t *testing.T, b string) {
			must(t, os.Lchown(b+"/dir/sub/h", 1234, 1234))
		}, want: &Diff{Path: "dir/sub/h", Kind: KindOwner, A: "0:0", B: "1234:1234"}},
		{name: "symlink owner change", inject: func(t *testing.T, b string) {
			must(t, os.Lchown(b+"/sl", 0, 1234))
		}, want: &Diff{Path: "sl", Kind: KindOwner, A: "0:0", B: "0:1234"}},
		{name: "file mtime", inject: func(t *testing.T, b string) {
			setMtime(t, b+"/dir/sub/h", old)
		}, want: &Diff{Path: "dir/sub/h", Kind: KindMtime}},
		{name: "mtime off by 1ns", inject: func(t *testing.T, b string) {
			ts := mtime(t, b+"/dir/sub/h")
			setMtime(t, b+"/dir/sub/h", time.Unix(ts.Unix()).Add(time.Nanosecond))
		}, want: &Diff{Path: "dir/sub/h", Kind: KindMtime}},
		{name: "dir mtime", inject: func(t *testing.T, b string) {
			setMtime(t, b+"/dir/sub", old)
		}, want: &Diff{Path: "dir/sub", Kind: KindMtime}},
		{name: "symlink mtime", inject: func(t *testing.T, b string) {
			setMtime(t, b+"/sl", old)
		}, want: &Diff{Path: "sl", Kind: KindMtime}},
		{name: "mtime with NoMtime", opt: &Options{NoMtime: true}, inject: func(t *testing.T, b string) {
			setMtime(t, b+"/dir/sub/h", old)
			setMtime(t, b+"/dir", old)
			setMtime(t, b, old)
		}},
		{name: "xattr added", inject: func(t *testing.T, b string) {
			must(t, xattr.LSet(b+"/dir/sub/h", "user.test", []byte("1")))
		}, want: &Diff{Path: "dir/sub/h", Kind: KindXattr, A: "user.test absent", B: `user.test="1"`}},
		{name: "xattr changed", inject: func(t *testing.T, b string) {
			must(t, xattr.LSet(b+"/dir/g", "user.test", []byte("new")))
		}, want: &Diff{Path: "dir/g", Kind: KindXattr, A: `user.test="orig"`, B: `user.test="new"`}},
		{name: "xattr removed", inject: func(t *testing.T, b string) {
			must(t, xattr.LRemove(b+"/dir/g", "user.test"))
		}, want: &Diff{Path: "dir/g", Kind: KindXattr, A: `user.test="orig"`, B: "user.test absent"}},
		{name: "dir xattr changed", inject: func(t *testing.T, b string) {
			must(t, xattr.LSet(b+"/dir", "user.dirattr", []byte("e")))
		}, want: &Diff{Path: "dir", Kind: KindXattr}},
		{name: "gfid differs", inject: func(t *testing.T, b string) {
			must(t, xattr.LSet(b+"/dir/sub/h", "trusted.replfs.gfid", gfidA))
		}, want: &Diff{Path: "dir/sub/h", Kind: KindXattr,
			A: "trusted.replfs.gfid=0xf0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
			B: "trusted.replfs.gfid=0x000102030405060708090a0b0c0d0e0f"}},
		{name: "symlink gfid differs", inject: func(t *testing.T, b string) {
			must(t, xattr.LSet(b+"/sl", "trusted.replfs.gfid", gfidB))
		}, want: &Diff{Path: "sl", Kind: KindXattr}},
		{name: "gfid missing", inject: func(t *testing.T, b string) {
			must(t, xattr.LRemove(b+"/dir/sub/h", "trusted.replfs.gfid"))
		}, want: &Diff{Path: "dir/sub/h", Kind: KindXattr, B: "trusted.replfs.gfid absent"}},
		{name: "replfs xattrs ignored", inject: func(t *testing.T, b string) {
			must(t, xattr.LSet(b+"/dir/g", "trusted.replfs.xtime", []byte("2")))
			must(t, xattr.LSet(b+"/dir/sub/h", "trusted.replfs.stime", []byte("3")))
			must(t, xattr.LSet(b+"/dir/sub/h", "user.replfs.other", []byte("4")))
		}},
		{name: "user gfid compared", inject: func(t *testing.T, b string) {
			must(t, xattr.LSet(b+"/dir/sub/h", "user.replfs.gfid", gfidA))
		}, want: &Diff{Path: "dir/sub/h", Kind: KindXattr}},
		{name: "custom IgnoreXattr", opt: &Options{IgnoreXattr: func(n string) bool { return n == "user.test" }},
			inject: func(t *testing.T, b string) {
				must(t, xattr.LSet(b+"/dir/g", "user.test", []byte("new")))
				must(t, xattr.LSet(b+"/dir/g", "trusted.replfs.xtime", []byte("2")))
			}, want: &Diff{Path: "dir/g", Kind: KindXattr, A: `trusted.replfs.xtime="1"`, B: `trusted.replfs.xtime="2"`}},
		{name: "symlink target", inject: func(t *testing.T, b string) {
			replace(t, b, "sl", func(p string) {
				must(t, os.Remove(p))
				must(t, os.Symlink("dir/sub/h", p))
				must(t, xattr.LSet(p, "trusted.replfs.gfid", gfidC))
			})
		}, want: &Diff{Path: "sl", Kind: KindSymlink, A: "dir/g", B: "dir/sub/h"}},
		{name: "rdev", devices: true, inject: func(t *testing.T, b string) {
			replace(t, b, "cdev", func(p string) {
				must(t, os.Remove(p))
				must(t, unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 5))))
			})
		}, want: &Diff{Path: "cdev", Kind: KindRdev, A: "1,3", B: "1,5"}},
		{name: "fifo becomes file", inject: func(t *testing.T, b string) {
			replace(t, b, "fifo", func(p string) {
				must(t, os.Remove(p))
				writeFile(t, p, "", 0o600)
			})
		}, want: &Diff{Path: "fifo", Kind: KindType, A: "fifo", B: "file"}},
		{name: "hard link broken", inject: func(t *testing.T, b string) {
			replace(t, b, "dir/f-link", func(p string) {
				out, err := exec.Command("sh", "-c", `cp -a "$1" "$1.tmp" && mv "$1.tmp" "$1"`, "sh", p).CombinedOutput()
				if err != nil {
					t.Fatalf("%v: %s", err, out)
				}
			})
		}, want: &Diff{Path: "dir/f-link", Kind: KindHardlink, A: "dir/f-link, f", B: "dir/f-link"}},
		{name: "hard link made", inject: func(t *testing.T, b string) {
			replace(t, b, "c2", func(p string) {
				must(t, os.Remove(p))
				must(t, os.Link(b+"/c1", p))
			})
		}, want: &Diff{Path: "c1", Kind: KindHardlink, A: "c1", B: "c1, c2"}},
		{name: "replfs only in A", inject: func(t *testing.T, b string) {
			keepMtime(t, b, func() { must(t, os.RemoveAll(b+"/.replfs")) })
		}},
		{name: "replfs a file in B", inject: func(t *testing.T, b string) {
			keepMtime(t, b, func() {
				must(t, os.RemoveAll(b+"/.replfs"))
				writeFile(t, b+"/.replfs", "x", 0o600)
			})
		}},
		{name: "custom SkipRoot", opt: &Options{SkipRoot: []string{".replfs", "dir"}}, inject: func(t *testing.T, b string) {
			keepMtime(t, b, func() { must(t, os.RemoveAll(b+"/dir")) })
		}},
		{name: "empty SkipRoot compares .replfs", opt: &Options{SkipRoot: []string{}}, inject: func(t *testing.T, b string) {
			keepMtime(t, b, func() { must(t, os.RemoveAll(b+"/.replfs")) })
		}, want: &Diff{Path: ".replfs", Kind: KindMissing}},
		{name: "root mode", inject: func(t *testing.T, b string) {
			must(t, os.Chmod(b, 0o700))
		}, want: &Diff{Path: ".", Kind: KindMode, A: "0755", B: "0700"}},
		{name: "root meta with NoRootMeta", opt: &Options{NoRootMeta: true}, inject: func(t *testing.T, b string) {
			must(t, os.Chmod(b, 0o700))
			must(t, os.Lchown(b, 1234, 1234))
			must(t, xattr.LSet(b, "user.root", []byte("r")))
			setMtime(t, b, old)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := build(t)
			if tc.devices && !tr.devices {
				t.Skip("mknod of a character device not permitted here")
			}
			tc.inject(t, tr.b)
			got := compare(t, tr, tc.opt)
			if tc.want == nil {
				if len(got) != 0 {
					t.Fatalf("want no difference, got %s", Report(got, 10))
				}
				return
			}
			w := *tc.want
			if len(got) != 1 || got[0].Path != w.Path || got[0].Kind != w.Kind ||
				(w.A != "" && got[0].A != w.A) || (w.B != "" && got[0].B != w.B) {
				t.Fatalf("want 1 difference %s, got %s", w, Report(got, 10))
			}
		})
	}
}

// A tree changing during the walk gives differences, never an error.
func TestLiveTreeIsNoError(t *testing.T) {
	tr := build(t)
	live := filepath.Join(tr.b, "dir/live")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := filepath.Join(live, fmt.Sprint(i%7))
			_ = os.MkdirAll(live, 0o755)
			switch i % 3 {
			case 0:
				_ = os.WriteFile(p, []byte(strings.Repeat("x", i%5000)), 0o644)
				_ = xattr.LSet(p, "user.n", []byte(fmt.Sprint(i)))
			case 1:
				_ = os.Symlink("t", p)
			default:
				_ = os.Mkdir(p, 0o755)
			}
			if i%11 == 0 {
				_ = os.RemoveAll(live)
			} else {
				_ = os.RemoveAll(filepath.Join(live, fmt.Sprint((i+3)%7)))
			}
		}
	}()
	defer func() { close(stop); <-done }()
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); {
		if _, err := Compare(tr.a, tr.b, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := Compare(tr.b, tr.a, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMissingRootIsAnError(t *testing.T) {
	d := t.TempDir()
	if _, err := Compare(d, filepath.Join(d, "nope"), nil); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("want an error naming the missing root, got %v", err)
	}
}

func TestReport(t *testing.T) {
	diffs := []Diff{
		{Path: "a", Kind: KindMissing, A: "file"},
		{Path: "b", Kind: KindMode, A: "0644", B: "0600"},
		{Path: "c", Kind: KindExtra},
	}
	if got, want := Report(nil, 5), "no differences"; got != want {
		t.Errorf("Report(nil) = %q, want %q", got, want)
	}
	want := "3 differences\n  missing a: file | -\n  mode b: 0644 | 0600\n  ... and 1 more"
	if got := Report(diffs, 2); got != want {
		t.Errorf("Report(diffs, 2) =\n%s\nwant\n%s", got, want)
	}
	if got := Report(diffs, -1); !strings.HasSuffix(got, "\n  extra c") {
		t.Errorf("Report(diffs, -1) = %q, want all three", got)
	}
}
