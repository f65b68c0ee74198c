// Package mountinfo reads the kernel's table of mounts
// (/proc/self/mountinfo).
package mountinfo

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
)

// Entry is one mount.
type Entry struct {
	Device     string // major:minor; for FUSE the minor is the fusectl connection number
	Mountpoint string
	FSType     string // e.g. "ext4", "fuse.replfs"
	Source     string // for a replfs mount: the brick, unless mounted with fsname=
}

// Brick returns the brick of a replfs mount: its source when that is a
// brick (the common case, and no request to the mount), else what the
// mount's root answers for gfid.BrickPathXattr (a mount with fsname=);
// "" when neither tells.
func (e Entry) Brick() string {
	if filepath.IsAbs(e.Source) {
		if fi, err := os.Stat(filepath.Join(e.Source, gfid.StateDir, "brick.json")); err == nil && fi.Mode().IsRegular() {
			return e.Source
		}
	}
	var buf [4096]byte
	n, err := unix.Getxattr(e.Mountpoint, gfid.BrickPathXattr, buf[:])
	if err != nil || n == 0 {
		return ""
	}
	return string(buf[:n])
}

// Read returns every mount of this process's mount namespace.
func Read() ([]Entry, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return parse(string(data)), nil
}

func parse(data string) []Entry {
	var out []Entry
	for _, line := range strings.Split(data, "\n") {
		i := strings.Index(line, " - ")
		if i < 0 {
			continue
		}
		pre, post := strings.Fields(line[:i]), strings.Fields(line[i+3:])
		if len(pre) < 5 || len(post) < 2 {
			continue
		}
		out = append(out, Entry{Device: pre[2], Mountpoint: unescape(pre[4]), FSType: post[0], Source: unescape(post[1])})
	}
	return out
}

// unescape undoes the kernel's octal escapes (\040 for a space, ...).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// IsMountpoint reports whether something is mounted at the absolute path.
func IsMountpoint(abs string) bool {
	ents, err := Read()
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.Mountpoint == abs {
			return true
		}
	}
	return false
}

// Replfs returns the replfs mounts.
func Replfs() ([]Entry, error) {
	ents, err := Read()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range ents {
		if e.FSType == "fuse.replfs" {
			out = append(out, e)
		}
	}
	return out, nil
}
