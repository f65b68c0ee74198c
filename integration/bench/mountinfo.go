package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/replfs/replfs/internal/mountinfo"
)

// mount is one line of /proc/self/mountinfo.
type mount = mountinfo.Entry

func readMounts() ([]mount, error) { return mountinfo.Read() }

// mountAt returns the mount whose mountpoint is exactly path, if any (the
// last one, the one visible at path, when several are stacked).
func mountAt(path string) (mount, bool) {
	ms, err := readMounts()
	if err != nil {
		return mount{}, false
	}
	var found mount
	ok := false
	for _, m := range ms {
		if m.Mountpoint == path {
			found, ok = m, true
		}
	}
	return found, ok
}

// mountsUnder lists the mountpoints at or below dir.
func mountsUnder(dir string) []string {
	ms, _ := readMounts()
	var out []string
	for _, m := range ms {
		if m.Mountpoint == dir || strings.HasPrefix(m.Mountpoint, dir+"/") {
			out = append(out, m.Mountpoint)
		}
	}
	return out
}

// fsOf describes the file system holding path (the mount with the longest
// mountpoint prefix).
func fsOf(path string) mount {
	ms, _ := readMounts()
	var best mount
	for _, m := range ms {
		if (path == m.Mountpoint || strings.HasPrefix(path, strings.TrimSuffix(m.Mountpoint, "/")+"/")) &&
			len(m.Mountpoint) >= len(best.Mountpoint) {
			best = m
		}
	}
	return best
}

// waitMounted polls until a FUSE mount appears at path, the daemon exits
// (exited closes), the context ends or timeout passes.
func waitMounted(ctx context.Context, path string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if m, ok := mountAt(path); ok && strings.HasPrefix(m.FSType, "fuse") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no FUSE mount at %s after %s", path, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return fmt.Errorf("daemon exited before %s was mounted", path)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// abortConnection ends every pending request of the FUSE mount at path
// through fusectl, when it is mounted; the last resort for a daemon that
// neither answers nor exits.
func abortConnection(m mount) {
	_, minor, ok := strings.Cut(m.Device, ":")
	if !ok {
		return
	}
	os.WriteFile(filepath.Join("/sys/fs/fuse/connections", minor, "abort"), []byte("1"), 0)
}
