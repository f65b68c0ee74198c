package layout

import (
	"runtime"
	"strconv"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Operations on one inode, addressed as name in directory dfd (a
// descriptor the caller resolved confined), or as dfd itself when name is
// "". None follows a symlink at name: a symlink's own metadata is changed.

// xattrAt: whether the kernel has the *xattrat(2) calls (Linux 6.13):
// 0 not known yet, 1 yes, -1 no (then /proc/self/fd/N/name is used: the
// directory is the descriptor's, and the last name is not followed).
var xattrAt atomic.Int32

type xattrArgs struct {
	value uint64
	size  uint32
	flags uint32
}

func atFlags(name string) int {
	if name == "" {
		return unix.AT_SYMLINK_NOFOLLOW | unix.AT_EMPTY_PATH
	}
	return unix.AT_SYMLINK_NOFOLLOW
}

// procPath names dfd/name through procfs, for kernels without *xattrat.
func procPath(dfd int, name string) string {
	p := "/proc/self/fd/" + strconv.Itoa(dfd)
	if name != "" {
		p += "/" + name
	}
	return p
}

func atResult(r uintptr, e unix.Errno) (n int, ok bool, err error) {
	if e == unix.ENOSYS {
		xattrAt.Store(-1)
		return 0, false, nil
	}
	xattrAt.Store(1)
	if e != 0 {
		return 0, true, e
	}
	return int(r), true, nil
}

// Getxattr reads xattr attr of dfd/name into buf.
func Getxattr(dfd int, name, attr string, buf []byte) (int, error) {
	if name == "" {
		return unix.Fgetxattr(dfd, attr, buf)
	}
	if xattrAt.Load() >= 0 {
		np, ap, err := cstrings(name, attr)
		if err != nil {
			return 0, err
		}
		args := xattrArgs{size: uint32(len(buf))}
		if len(buf) > 0 {
			args.value = uint64(uintptr(unsafe.Pointer(&buf[0])))
		}
		r, _, e := unix.Syscall6(unix.SYS_GETXATTRAT, uintptr(dfd), uintptr(unsafe.Pointer(np)),
			uintptr(atFlags(name)), uintptr(unsafe.Pointer(ap)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
		runtime.KeepAlive(buf)
		if n, ok, err := atResult(r, e); ok {
			return n, err
		}
	}
	return unix.Lgetxattr(procPath(dfd, name), attr, buf)
}

// Listxattr lists the xattr names of dfd/name into buf.
func Listxattr(dfd int, name string, buf []byte) (int, error) {
	if name == "" {
		return unix.Flistxattr(dfd, buf)
	}
	if xattrAt.Load() >= 0 {
		np, err := unix.BytePtrFromString(name)
		if err != nil {
			return 0, err
		}
		var bp unsafe.Pointer
		if len(buf) > 0 {
			bp = unsafe.Pointer(&buf[0])
		}
		r, _, e := unix.Syscall6(unix.SYS_LISTXATTRAT, uintptr(dfd), uintptr(unsafe.Pointer(np)),
			uintptr(atFlags(name)), uintptr(bp), uintptr(len(buf)), 0)
		runtime.KeepAlive(buf)
		if n, ok, err := atResult(r, e); ok {
			return n, err
		}
	}
	return unix.Llistxattr(procPath(dfd, name), buf)
}

// Setxattr sets xattr attr of dfd/name to val.
func Setxattr(dfd int, name, attr string, val []byte, flags int) error {
	if name == "" {
		return unix.Fsetxattr(dfd, attr, val, flags)
	}
	if xattrAt.Load() >= 0 {
		np, ap, err := cstrings(name, attr)
		if err != nil {
			return err
		}
		args := xattrArgs{size: uint32(len(val)), flags: uint32(flags)}
		if len(val) > 0 {
			args.value = uint64(uintptr(unsafe.Pointer(&val[0])))
		}
		r, _, e := unix.Syscall6(unix.SYS_SETXATTRAT, uintptr(dfd), uintptr(unsafe.Pointer(np)),
			uintptr(atFlags(name)), uintptr(unsafe.Pointer(ap)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
		runtime.KeepAlive(val)
		if _, ok, err := atResult(r, e); ok {
			return err
		}
	}
	return unix.Lsetxattr(procPath(dfd, name), attr, val, flags)
}

// Removexattr removes xattr attr of dfd/name.
func Removexattr(dfd int, name, attr string) error {
	if name == "" {
		return unix.Fremovexattr(dfd, attr)
	}
	if xattrAt.Load() >= 0 {
		np, ap, err := cstrings(name, attr)
		if err != nil {
			return err
		}
		r, _, e := unix.Syscall6(unix.SYS_REMOVEXATTRAT, uintptr(dfd), uintptr(unsafe.Pointer(np)),
			uintptr(atFlags(name)), uintptr(unsafe.Pointer(ap)), 0, 0)
		if _, ok, err := atResult(r, e); ok {
			return err
		}
	}
	return unix.Lremovexattr(procPath(dfd, name), attr)
}

func cstrings(a, b string) (*byte, *byte, error) {
	ap, err := unix.BytePtrFromString(a)
	if err != nil {
		return nil, nil, err
	}
	bp, err := unix.BytePtrFromString(b)
	return ap, bp, err
}

// Chown sets the owner of dfd/name (not following a symlink).
func Chown(dfd int, name string, uid, gid uint32) error {
	return unix.Fchownat(dfd, name, int(uid), int(gid), atFlags(name))
}

// Chmod sets the permission bits of dfd/name, which must not be a symlink
// (a symlink has no mode of its own): fchmodat2 with AT_SYMLINK_NOFOLLOW,
// so that a name swapped for a symlink is refused, not followed.
func Chmod(dfd int, name string, mode uint32) error {
	if name == "" {
		return unix.Fchmod(dfd, mode)
	}
	err := unix.Fchmodat(dfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err != unix.EOPNOTSUPP {
		return err
	}
	// A kernel without fchmodat2: open the inode itself, never its target.
	fd, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.EOPNOTSUPP
	}
	return unix.Chmod(procPath(fd, ""), mode)
}

// Utimes sets the access and modification times (unix ns) of dfd/name.
func Utimes(dfd int, name string, atime, mtime int64) error {
	ts := []unix.Timespec{unix.NsecToTimespec(atime), unix.NsecToTimespec(mtime)}
	return unix.UtimesNanoAt(dfd, name, ts, atFlags(name))
}

// Lstat stats dfd/name without following a symlink.
func Lstat(dfd int, name string, st *unix.Stat_t) error {
	if name == "" {
		return unix.Fstat(dfd, st)
	}
	return unix.Fstatat(dfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
}

// Readlink reads symlink dfd/name.
func Readlink(dfd int, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(dfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		if len(buf) >= 1<<16 {
			return "", unix.ENAMETOOLONG
		}
		buf = make([]byte, 2*len(buf))
	}
}
