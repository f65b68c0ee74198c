package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
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
