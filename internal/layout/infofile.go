package layout

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// MaxInfoSize bounds replfs's own small files (brick.json, target.json,
// state files): each is a few hundred bytes, so anything near this is not
// one of them.
const MaxInfoSize = 64 << 10

// ReadInfoFile reads name, a file in directory dirfd that replfs wrote
// itself, refusing what cannot be one: a symlink (it could lead to
// /dev/zero or out of the tree), anything but a regular file (opening a
// fifo blocks, a device reads forever) and a file larger than max. Errors
// name the file; one that does not exist satisfies errors.Is(err,
// fs.ErrNotExist).
func ReadInfoFile(dirfd int, name string, max int64) ([]byte, error) {
	return readInfo(dirfd, name, name, max)
}

// ReadInfoPath is ReadInfoFile for a caller without a directory
// descriptor: the parent directory is opened without following a symlink
// at its last component.
func ReadInfoPath(path string, max int64) ([]byte, error) {
	dir := filepath.Dir(path)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		var st unix.Stat_t
		if err == unix.ELOOP || err == unix.ENOTDIR && unix.Lstat(dir, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return nil, fmt.Errorf("%s is a symlink", dir)
		}
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)
	return readInfo(dfd, filepath.Base(path), path, max)
}

func readInfo(dirfd int, name, shown string, max int64) ([]byte, error) {
	var fd int
	var err error
	for {
		// O_NONBLOCK: a fifo opens at once instead of waiting for a writer.
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		if err == unix.ELOOP {
			return nil, fmt.Errorf("%s is a symlink", shown)
		}
		return nil, &fs.PathError{Op: "open", Path: shown, Err: err}
	}
	f := os.NewFile(uintptr(fd), shown)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: shown, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s is not a regular file (%s)", shown, typeName(st.Mode))
	}
	if st.Size > max {
		return nil, fmt.Errorf("%s is larger than %s", shown, sizeName(max))
	}
	// The size may change under us: read at most one byte more than
	// allowed, so that a file that grew is still refused.
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, pe
		}
		return nil, fmt.Errorf("read %s: %w", shown, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %s", shown, sizeName(max))
	}
	return data, nil
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFLNK:
		return "symlink"
	}
	return fmt.Sprintf("file type %#o", mode&unix.S_IFMT)
}

func sizeName(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
