package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// installHelper puts the replfs binary (or a link to it) where mount(8)
// and mount.fuse3 look, with their fixed safe PATH, and removes it after.
func installHelper(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("fstab tests need root")
		}
		t.Skip("fstab tests need root")
	}
	if _, err := os.Lstat(path); err == nil {
		t.Fatalf("%s already exists; refusing to replace it", path)
	}
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.Symlink(replfsBin, path))
	t.Cleanup(func() { os.Remove(path) })
}

func requireMountFuse3(t *testing.T) {
	t.Helper()
	for _, p := range []string{"/sbin/mount.fuse3", "/usr/sbin/mount.fuse3"} {
		if _, err := os.Stat(p); err == nil {
			return
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("mount.fuse3 missing (Debian package fuse3)")
	}
	t.Skip("mount.fuse3 missing (Debian package fuse3)")
}

// mountFstab writes a one-line fstab for the fixture with the given
// options and runs "mount --fstab FILE MOUNTPOINT", with replfs installed
// where mount(8) finds it.
func mountFstab(t *testing.T, f *fixture, opts string) (string, error) {
	t.Helper()
	requireFUSE(t)
	requireMountFuse3(t)
	installHelper(t, "/usr/local/bin/replfs")
	fstab := filepath.Join(f.Root, "fstab")
	line := fmt.Sprintf("%s %s fuse.replfs %s 0 0\n", f.Brick, f.Mnt, opts)
	must(t, os.WriteFile(fstab, []byte(line), 0o644))
	out, err := exec.Command("mount", "--fstab", fstab, f.Mnt).CombinedOutput()
	return string(out), err
}

// TestFstabMountsWithFuseType mounts from an fstab line of type fuse.replfs
// with the real mount(8), the way "mount /data" does at boot.
func TestFstabMountsWithFuseType(t *testing.T) {
	f := newFixture(t)
	out, err := mountFstab(t, f, "defaults,_netdev,nofail,rollover=200ms,x-systemd.automount")
	if err != nil {
		t.Fatalf("mount --fstab: %v: %s", err, out)
	}
	t.Cleanup(func() { f.unmountQuiet(t) })
	if !isMounted(f.Mnt) {
		t.Fatal("mount succeeded but nothing is mounted")
	}
	writeFile(t, f.m("via-fstab"), "hello")
	if out, err := exec.Command("umount", f.Mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	waitFor(t, 10*time.Second, "daemon to release the brick", func() bool {
		b, _ := os.ReadFile(f.b(".replfs/run/lock"))
		return len(strings.TrimSpace(string(b))) == 0
	})
	found := false
	for _, r := range dumpJournal(t, f.Brick) {
		if r.Op == "CREATE" && r.Name == "via-fstab" {
			found = true
		}
	}
	if !found {
		t.Error("file created through the fstab mount has no CREATE record")
	}
}

// TestFstabBadOptionFailsMount checks that a mount failure makes mount(8)
// fail with the reason, and leaves the brick untouched.
func TestFstabBadOptionFailsMount(t *testing.T) {
	f := newFixture(t)
	out, err := mountFstab(t, f, "defaults,turbo=yes")
	if err == nil {
		f.unmountQuiet(t)
		t.Fatal("mount with an unknown option succeeded")
	}
	if !strings.Contains(out, `unknown mount option "turbo=yes"`) {
		t.Errorf("mount output does not name the bad option: %q", out)
	}
	if isMounted(f.Mnt) {
		t.Error("mounted despite the error")
	}
	if ents, _ := os.ReadDir(f.Brick); len(ents) != 0 {
		t.Errorf("failed mount changed the brick: %v", ents)
	}
}

// TestMountHelperByName runs the binary as mount.replfs, as mount(8) does
// for type "replfs".
func TestMountHelperByName(t *testing.T) {
	requireFUSE(t)
	f := newFixture(t)
	helper := filepath.Join(f.Root, "mount.replfs")
	must(t, os.Symlink(replfsBin, helper))
	r := runBin(t, helper, f.Brick, f.Mnt, "-o", "rw,dev,suid,rollover=1s")
	if r.code != 0 {
		t.Fatalf("mount.replfs: exit %d: %s", r.code, r.stderr)
	}
	t.Cleanup(func() { f.unmountQuiet(t) })
	writeFile(t, f.m("x"), "y")
	f.unmount(t)
	if b, err := os.ReadFile(f.b("x")); err != nil || string(b) != "y" {
		t.Fatalf("file not in brick: %q %v", b, err)
	}
}
