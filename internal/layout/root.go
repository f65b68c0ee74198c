// Package layout is the one implementation of a brick-shaped tree on disk:
// the brick itself, a directory mirror, and (later) the server side of a
// remote mirror and the places of an erasure-coded set.
//
// Invariant: nothing below a Root is reached by letting the kernel follow a
// symlink or leave the root. Every path is resolved relative to the root's
// descriptor with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
// RESOLVE_NO_MAGICLINKS), and every operation on a last component uses the
// *at form with AT_SYMLINK_NOFOLLOW (or O_NOFOLLOW), on a directory
// descriptor the caller resolved that way. A tree's contents are untrusted:
// a user of an allow_other mount, or whoever can write the target's disk,
// may have put anything there.
package layout

import (
	"fmt"
	"io/fs"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Root is a directory opened once, below which every path is confined.
type Root struct {
	fd   int
	path string
}

// OpenRoot opens directory path as a root. A root that is a symlink is
// refused: the operator named one directory, and a symlink there may be
// repointed under a running daemon.
func OpenRoot(path string) (*Root, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		switch err {
		case unix.ELOOP:
			return nil, fmt.Errorf("%s is a symlink; name the directory it leads to", path)
		case unix.ENOTDIR:
			var st unix.Stat_t
			if unix.Lstat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				return nil, fmt.Errorf("%s is a symlink; name the directory it leads to", path)
			}
			return nil, fmt.Errorf("%s is not a directory", path)
		}
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return &Root{fd: fd, path: path}, nil
}

// OpenTrustedRoot opens directory path as a root, following a symlink
// at path itself: for a brick, whose path the operator gave to the mount
// (and which replfs already resolved), where only what is below it is
// untrusted.
func OpenTrustedRoot(path string) (*Root, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return &Root{fd: fd, path: path}, nil
}

// Path is the root's path as it was opened, for messages.
func (r *Root) Path() string { return r.path }

// FD is the root's descriptor; it stays owned by the Root.
func (r *Root) FD() int { return r.fd }

// Close releases the root's descriptor.
func (r *Root) Close() error {
	if r.fd < 0 {
		return nil
	}
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}

// Abs returns rel's path for messages (never to be opened).
func (r *Root) Abs(rel string) string {
	if rel == "" || rel == "." {
		return r.path
	}
	return r.path + "/" + rel
}

// noOpenat2 is set once the kernel has said it has no openat2.
var noOpenat2 atomic.Bool

const resolveConfined = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// Open opens rel (relative to the root, "" or "." for the root itself) with
// flags, never following a symlink on the way or at the end and never
// leaving the root. A symlink anywhere on the path fails with ELOOP.
func (r *Root) Open(rel string, flags int, mode uint32) (int, error) {
	if rel == "" {
		rel = "."
	}
	fd, err := OpenBeneath(r.fd, rel, flags, mode)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: r.Abs(rel), Err: err}
	}
	return fd, nil
}

// OpenDir opens directory rel below the root for reading its entries and
// acting on them through *at calls.
func (r *Root) OpenDir(rel string) (int, error) {
	return r.Open(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
}

// OpenBeneath is openat2 confined to directory dfd: no symlink followed,
// no "..", no magic link leading out. O_NOFOLLOW and O_CLOEXEC are added.
func OpenBeneath(dfd int, rel string, flags int, mode uint32) (int, error) {
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	if !noOpenat2.Load() {
		how := unix.OpenHow{Flags: uint64(flags), Resolve: resolveConfined}
		if flags&unix.O_CREAT != 0 {
			how.Mode = uint64(mode)
		}
		for {
			fd, err := unix.Openat2(dfd, rel, &how)
			if err == unix.EINTR || err == unix.EAGAIN {
				continue // openat2 may ask to retry when a rename raced it
			}
			if err != unix.ENOSYS {
				return fd, err
			}
			noOpenat2.Store(true)
			break
		}
	}
	return openWalk(dfd, rel, flags, mode)
}

// openWalk is OpenBeneath for kernels without openat2: one component at a
// time, each opened O_NOFOLLOW, ".." refused.
func openWalk(dfd int, rel string, flags int, mode uint32) (int, error) {
	parts := strings.Split(rel, "/")
	cur, owned := dfd, false
	defer func() {
		if owned {
			unix.Close(cur)
		}
	}()
	for i, p := range parts {
		if p == "" || p == "." {
			if i < len(parts)-1 {
				continue
			}
			p = "."
		}
		if p == ".." {
			return -1, unix.EXDEV
		}
		f := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(parts)-1 {
			f = flags
		}
		fd, err := unix.Openat(cur, p, f, mode)
		if err != nil {
			return -1, err
		}
		if owned {
			unix.Close(cur)
		}
		cur, owned = fd, true
	}
	owned = false
	return cur, nil
}

// MkdirAll makes directory rel and its missing parents below the root
// (mode perm), refusing any existing component that is not a directory.
func (r *Root) MkdirAll(rel string, perm uint32) error {
	cur := "."
	for _, p := range strings.Split(rel, "/") {
		if p == "" || p == "." {
			continue
		}
		if err := ValidName(p); err != nil {
			return fmt.Errorf("%s: %w", r.Abs(rel), err)
		}
		dfd, err := r.OpenDir(cur)
		if err != nil {
			return err
		}
		err = unix.Mkdirat(dfd, p, perm)
		unix.Close(dfd)
		if err != nil && err != unix.EEXIST {
			return &fs.PathError{Op: "mkdir", Path: r.Abs(Join(cur, p)), Err: err}
		}
		cur = Join(cur, p)
	}
	fd, err := r.OpenDir(cur)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// ValidName checks that name is one directory entry's name: not empty,
// not "." or "..", without "/" or NUL.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty name")
	case name == "." || name == "..":
		return fmt.Errorf("invalid name %q", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("invalid name %q", name)
	case len(name) > 255:
		return fmt.Errorf("name longer than 255 bytes")
	}
	return nil
}

// Join joins a root-relative directory and a name ("" or "." is the root).
func Join(dir, name string) string {
	if dir == "" || dir == "." {
		return name
	}
	return dir + "/" + name
}

// WriteFileAtomic replaces dfd/name with data so that a crash leaves the
// old or the new content, never a mix: written to a new temporary name
// (O_EXCL, never following a symlink), synced, renamed over name, and the
// directory synced.
func WriteFileAtomic(dfd int, name string, data []byte) error {
	tmp := name + ".tmp"
	unix.Unlinkat(dfd, tmp, 0)
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &fs.PathError{Op: "create", Path: tmp, Err: err}
	}
	for b := data; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			unix.Unlinkat(dfd, tmp, 0)
			return &fs.PathError{Op: "write", Path: tmp, Err: err}
		}
		b = b[n:]
	}
	err = unix.Fsync(fd)
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, name)
	}
	if err != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return &fs.PathError{Op: "replace", Path: name, Err: err}
	}
	return unix.Fsync(dfd)
}

// WriteFileAtomicPath is WriteFileAtomic for path, whose directory must
// not be a symlink.
func WriteFileAtomicPath(path string, data []byte) error {
	dir, name := path, ""
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir, name = path[:i], path[i+1:]
		if dir == "" {
			dir = "/"
		}
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)
	if err := WriteFileAtomic(dfd, name, data); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return nil
}
