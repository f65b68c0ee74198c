package options

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is one directory a mount names: its brick, its mountpoint, a mirror.
type Dir struct {
	What string // "brick", "mountpoint", "mirror": for messages
	Path string // as given
}

// CheckSeparate refuses two of dirs that are the same directory or one
// inside the other. Paths are compared resolved, and also by device and
// inode up the chain of ".." from each, so that no spelling escapes: a
// symlink, a trailing slash, "..", a bind mount of the same directory. A
// mount inside its own brick deadlocks (each lookup of the mountpoint goes
// through the mount), and a mirror inside the brick, the mountpoint or
// another mirror would be replicated into itself or wiped by a crawl.
func CheckSeparate(dirs []Dir) error {
	anc := make([][]dirID, len(dirs))
	for i, d := range dirs {
		a, err := ancestry(d.Path)
		if err != nil {
			return fmt.Errorf("%s %s: %w", d.What, d.Path, err)
		}
		anc[i] = a
	}
	for i := range dirs {
		for j := i + 1; j < len(dirs); j++ {
			if err := checkPair(dirs[i], dirs[j], anc[i], anc[j]); err != nil {
				return err
			}
		}
	}
	return nil
}

// dirID is a directory's identity, whatever path leads to it.
type dirID struct{ dev, ino uint64 }

// ancestry returns the identity of the directory path leads to, then
// those of its parent, grandparent ... up to the root.
func ancestry(path string) ([]dirID, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var out []dirID
	for len(out) < 4096 {
		var st unix.Stat_t
		err := unix.Fstat(fd, &st)
		if err == nil {
			id := dirID{uint64(st.Dev), st.Ino}
			if len(out) > 0 && out[len(out)-1] == id {
				break // the root is its own parent
			}
			out = append(out, id)
			var pfd int
			pfd, err = unix.Openat(fd, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err == nil {
				unix.Close(fd)
				fd = pfd
				continue
			}
		}
		unix.Close(fd)
		return nil, fmt.Errorf("walk up from %s: %w", path, err)
	}
	unix.Close(fd)
	return out, nil
}

type relation int

const (
	apart relation = iota
	same
	aInB // a is inside b
	bInA
)

func relate(a, b Dir, aa, ab []dirID) relation {
	switch {
	case aa[0] == ab[0]:
		return same
	case slices.Contains(aa[1:], ab[0]):
		return aInB
	case slices.Contains(ab[1:], aa[0]):
		return bInA
	}
	ra, erra := filepath.EvalSymlinks(a.Path)
	rb, errb := filepath.EvalSymlinks(b.Path)
	if erra != nil || errb != nil {
		return apart
	}
	switch {
	case ra == rb:
		return same
	case strings.HasPrefix(ra, rb+"/") || rb == "/":
		return aInB
	case strings.HasPrefix(rb, ra+"/") || ra == "/":
		return bInA
	}
	return apart
}

func checkPair(a, b Dir, aa, ab []dirID) error {
	const rule = "the brick, the mountpoint and each mirror must be separate directories, none inside another"
	switch relate(a, b, aa, ab) {
	case same:
		if a.What == b.What {
			return fmt.Errorf("%s %s is the same directory as %s %s%s; name each %s once", b.What, b.Path, a.What, a.Path, resolvedNote(b.Path), b.What)
		}
		return fmt.Errorf("%s %s is inside the %s %s (the same directory)%s; %s", b.What, b.Path, a.What, a.Path, resolvedNote(b.Path), rule)
	case aInB:
		return fmt.Errorf("%s %s is inside the %s %s%s; %s", a.What, a.Path, b.What, b.Path, resolvedNote(a.Path), rule)
	case bInA:
		return fmt.Errorf("%s %s is inside the %s %s%s; %s", b.What, b.Path, a.What, a.Path, resolvedNote(b.Path), rule)
	}
	return nil
}

// resolvedNote says where path leads when its spelling hides it.
func resolvedNote(path string) string {
	r, err := filepath.EvalSymlinks(path)
	if err != nil || r == filepath.Clean(path) {
		return ""
	}
	return " (it is " + r + ")"
}
