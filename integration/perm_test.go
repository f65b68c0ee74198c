package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pkg/xattr"
)

// asNobody runs a shell command as uid/gid 65534.
func asNobody(t *testing.T, script string) error {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Dir = "/"
	return cmd.Run()
}

// TestAllowOtherEnforcesPermissions: with allow_other, other users reach
// the mount but the kernel checks their access against the brick's modes;
// without it, they cannot enter the mount at all.
func TestAllowOtherEnforcesPermissions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	f := newFixture(t)
	must(t, os.Chmod(f.Root, 0o755))
	must(t, os.Chmod(filepath.Dir(f.Root), 0o755)) // t.TempDir makes it 0700
	f.mount(t, "allow_other")
	writeFile(t, f.m("root-only"), "secret")
	must(t, os.Chmod(f.m("root-only"), 0o600))
	must(t, os.Mkdir(f.m("shared"), 0o777))
	must(t, os.Chmod(f.m("shared"), 0o777)) // past the umask

	if err := asNobody(t, "cat "+f.m("root-only")+" >/dev/null 2>&1"); err == nil {
		t.Error("another user read a 0600 root file through the mount")
	}
	if err := asNobody(t, "echo x > "+f.m("root-only")+" 2>/dev/null"); err == nil {
		t.Error("another user wrote a 0600 root file through the mount")
	}
	if err := asNobody(t, "echo mine > "+f.m("shared/nobody-file")); err != nil {
		t.Errorf("another user could not create a file in a 0777 directory: %v", err)
	}
	var st syscall.Stat_t
	must(t, syscall.Stat(f.b("shared/nobody-file"), &st))
	if st.Uid != 65534 || st.Gid != 65534 {
		t.Errorf("file created by uid 65534 is owned by %d:%d in the brick", st.Uid, st.Gid)
	}
	b, _ := os.ReadFile(f.b("root-only"))
	if string(b) != "secret" {
		t.Errorf("root-only content changed: %q", b)
	}
	f.unmount(t)

	f.mount(t)
	if err := asNobody(t, "ls "+f.Mnt+" >/dev/null 2>&1"); err == nil {
		t.Error("without allow_other another user listed the mount")
	}
}

// TestWriteDropsPrivilegesLikeTheKernel: an unprivileged writer clears
// set-user-ID and set-group-ID (with group execute), and any write drops
// file capabilities, as on a local filesystem. replfs handles this itself
// (FUSE_HANDLE_KILLPRIV_V2), so it must be right.
func TestWriteDropsPrivilegesLikeTheKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users and set capabilities")
	}
	f := newFixture(t)
	must(t, os.Chmod(f.Root, 0o755))
	must(t, os.Chmod(filepath.Dir(f.Root), 0o755))
	f.mount(t, "allow_other")
	mode := func(rel string) os.FileMode {
		fi, err := os.Stat(f.b(rel))
		must(t, err)
		return fi.Mode()
	}
	for _, tc := range []struct {
		name, script string
	}{
		{"write", "echo more >> %s"},
		{"truncate on open", "echo new > %s"},
		{"truncate", "truncate -s 1 %s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rel := "suid-" + strings.ReplaceAll(tc.name, " ", "-")
			writeFile(t, f.m(rel), "#!/bin/sh\n")
			must(t, os.Chmod(f.m(rel), 0o777|os.ModeSetuid|os.ModeSetgid))
			if err := asNobody(t, fmt.Sprintf(tc.script, f.m(rel))); err != nil {
				t.Fatalf("unprivileged %s failed: %v", tc.name, err)
			}
			if m := mode(rel); m&(os.ModeSetuid|os.ModeSetgid) != 0 {
				t.Errorf("after an unprivileged %s the mode is %v, want setuid and setgid cleared", tc.name, m)
			}
		})
	}
	// Root keeps set-user-ID (it has CAP_FSETID)...
	writeFile(t, f.m("root-suid"), "x")
	must(t, os.Chmod(f.m("root-suid"), 0o755|os.ModeSetuid))
	af, err := os.OpenFile(f.m("root-suid"), os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = af.WriteString("y")
	must(t, err)
	must(t, af.Close())
	if m := mode("root-suid"); m&os.ModeSetuid == 0 {
		t.Errorf("root's write cleared set-user-ID: %v", m)
	}
	// ...but any write drops file capabilities (VFS_CAP_REVISION_2, CAP_NET_BIND_SERVICE).
	writeFile(t, f.m("capped"), "x")
	caps := []byte{0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	must(t, xattr.Set(f.m("capped"), "security.capability", caps))
	if _, err := xattr.Get(f.b("capped"), "security.capability"); err != nil {
		t.Fatalf("capability not set: %v", err)
	}
	cf, err := os.OpenFile(f.m("capped"), os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = cf.WriteString("z")
	must(t, err)
	must(t, cf.Close())
	if _, err := xattr.Get(f.b("capped"), "security.capability"); err == nil {
		t.Error("a write kept the file's capabilities")
	}
}
