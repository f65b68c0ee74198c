package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// probePassthrough tells whether a FUSE daemon sees file data, from the
// bytes it writes while a file is written through its mount: without
// kernel passthrough the daemon pwrite(2)s every byte to its backing
// file; with passthrough the kernel writes the backing file in the
// writer's context and the daemon sees no data at all. The answer is
// "yes", "no" or "unknown".
func probePassthrough(ctx context.Context, root string, pid int, block []byte) (string, error) {
	if pid <= 0 {
		return "unknown", nil
	}
	before, err := wchar(pid)
	if err != nil {
		return "unknown", nil
	}
	path := filepath.Join(root, ".bench-passthrough-probe")
	if err := writeFile(ctx, path, probeBytes, block); err != nil {
		return "", fmt.Errorf("passthrough probe: %w", err)
	}
	after, err := wchar(pid)
	if rerr := os.Remove(path); rerr != nil {
		return "", fmt.Errorf("passthrough probe: %w", rerr)
	}
	if err != nil {
		return "unknown", nil
	}
	if after-before < probeBytes/2 {
		return "yes", nil
	}
	return "no", nil
}

// wchar reads the bytes a process has passed to write-like system calls.
func wchar(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no wchar in /proc/%d/io", pid)
}
