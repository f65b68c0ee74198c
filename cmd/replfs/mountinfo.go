package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

type mountEntry struct {
	Mountpoint string
	Source     string // the brick, as the fsname
	FSType     string
}

func replfsMounts() ([]mountEntry, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []mountEntry
	for _, line := range strings.Split(string(data), "\n") {
		i := strings.Index(line, " - ")
		if i < 0 {
			continue
		}
		pre, post := strings.Fields(line[:i]), strings.Fields(line[i+3:])
		if len(pre) < 5 || len(post) < 2 || post[0] != "fuse.replfs" {
			continue
		}
		out = append(out, mountEntry{Mountpoint: unescape(pre[4]), Source: unescape(post[1]), FSType: post[0]})
	}
	return out, nil
}

func unescape(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// locate maps a path to (brick root, path inside the brick). The path may
// be inside a replfs mount or inside a brick.
func locate(p string) (brick, rel string, err error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", "", err
	}
	mounts, _ := replfsMounts()
	best := ""
	var bestM mountEntry
	for _, m := range mounts {
		if (abs == m.Mountpoint || strings.HasPrefix(abs, m.Mountpoint+"/") || m.Mountpoint == "/") && len(m.Mountpoint) > len(best) {
			best, bestM = m.Mountpoint, m
		}
	}
	if best != "" {
		r, _ := filepath.Rel(best, abs)
		return bestM.Source, r, nil
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
