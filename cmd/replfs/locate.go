package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/replfs/replfs/internal/mountinfo"
)

// locate maps a path to (brick root, path inside the brick). The path may
// be inside a replfs mount or inside a brick.
func locate(p string) (brick, rel string, err error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", "", err
	}
	mounts, _ := mountinfo.Replfs()
	best := ""
	var bestM mountinfo.Entry
	for _, m := range mounts {
		if (abs == m.Mountpoint || strings.HasPrefix(abs, m.Mountpoint+"/") || m.Mountpoint == "/") && len(m.Mountpoint) > len(best) {
			best, bestM = m.Mountpoint, m
		}
	}
	if best != "" {
		r, _ := filepath.Rel(best, abs)
		if b := bestM.Brick(); b != "" {
			return b, r, nil
		}
		return "", "", fmt.Errorf("%s: cannot tell the brick of the replfs mount %s", p, best)
	}
	for d := abs; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(filepath.Join(d, ".replfs", "brick.json")); err == nil && fi.Mode().IsRegular() {
			r, _ := filepath.Rel(d, abs)
			return d, r, nil
		}
		if d == "/" {
			break
		}
	}
	return "", "", fmt.Errorf("%s is neither in a replfs mount nor in a replfs brick", p)
}
