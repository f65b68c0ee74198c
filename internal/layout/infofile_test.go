package layout

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestReadInfoFileRefusesWhatReplfsNeverWrites(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "ok.json"), []byte(`{"format":1}`), 0o600))
	must(os.WriteFile(filepath.Join(dir, "target.json"), []byte("{}"), 0o600))
	must(os.Symlink("target.json", filepath.Join(dir, "link.json")))
	must(os.Symlink("/dev/zero", filepath.Join(dir, "zero.json")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo.json"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "big.json"), make([]byte, MaxInfoSize+1), 0o600))
	must(os.WriteFile(filepath.Join(dir, "limit.json"), make([]byte, MaxInfoSize), 0o600))
	must(os.Mkdir(filepath.Join(dir, "sub.json"), 0o700))

	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(err)
	defer unix.Close(dfd)

	for _, tc := range []struct {
		name, want string // want "" means the read succeeds
		size       int
	}{
		{"ok.json", "", 12},
		{"limit.json", "", MaxInfoSize},
		{"link.json", "link.json is a symlink", 0},
		{"zero.json", "zero.json is a symlink", 0},
		{"fifo.json", "fifo.json is not a regular file (fifo)", 0},
		{"sub.json", "sub.json is not a regular file (directory)", 0},
		{"big.json", "big.json is larger than 64 KiB", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A fifo or device that was opened the blocking way would hang
			// here: bound the call.
			type res struct {
				data []byte
				err  error
			}
			ch := make(chan res, 1)
			go func() {
				d, err := ReadInfoFile(dfd, tc.name, MaxInfoSize)
				ch <- res{d, err}
			}()
			var r res
			select {
			case r = <-ch:
			case <-time.After(5 * time.Second):
				t.Fatal("ReadInfoFile hangs")
			}
			if tc.want == "" {
				if r.err != nil || len(r.data) != tc.size {
					t.Fatalf("read %d bytes, %v; want %d bytes", len(r.data), r.err, tc.size)
				}
				return
			}
			if r.err == nil || r.err.Error() != tc.want {
				t.Fatalf("error %v, want %q", r.err, tc.want)
			}
		})
	}

	if _, err := ReadInfoFile(dfd, "missing.json", MaxInfoSize); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want a not-exist error", err)
	}
}

func TestReadInfoPathNamesThePath(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(state, "x.json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "y.json"), []byte("y"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ReadInfoPath(filepath.Join(state, "x.json"), MaxInfoSize)
	if err == nil || err.Error() != filepath.Join(state, "x.json")+" is not a regular file (fifo)" {
		t.Errorf("fifo: %v", err)
	}
	if d, err := ReadInfoPath(filepath.Join(state, "y.json"), MaxInfoSize); err != nil || string(d) != "y" {
		t.Errorf("regular file: %q, %v", d, err)
	}
	// A symlinked parent is not followed either.
	if err := os.Symlink("state", filepath.Join(dir, "alias")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadInfoPath(filepath.Join(dir, "alias", "y.json"), MaxInfoSize); err == nil || !strings.Contains(err.Error(), "alias is a symlink") {
		t.Errorf("symlinked parent: %v", err)
	}
	if _, err := ReadInfoPath(filepath.Join(dir, "none", "y.json"), MaxInfoSize); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing parent: %v, want a not-exist error", err)
	}
	if _, err := ReadInfoPath(filepath.Join(state, "y.json"), 0); err == nil || !strings.Contains(err.Error(), "is larger than 0 bytes") {
		t.Errorf("size limit: %v", err)
	}
}
