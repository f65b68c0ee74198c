package replicator

import (
	"errors"
	"io/fs"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FullEntry is a directory entry with everything a verify compares
// besides content: what Target.List returns.
type FullEntry struct {
	DirEntry
	Xattrs Xattrs // user-visible xattrs
	Link   string // symlink target
}

// listFull lists directory dp of tree t with each entry's attributes,
// gfid, xattrs and symlink target. It reads the directory through one
// descriptor (stat, xattrs and readlink relative to it, so no path is
// walked again): three system calls an entry without xattrs of its own.
func listFull(t *tree, dp string, root bool) ([]FullEntry, error) {
	fd, err := openDir(dp)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return listFullFD(t, fd, dp, root)
}

func openDir(dp string) (int, error) {
	fd, err := unix.Open(dp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: dp, Err: err}
	}
	return fd, nil
}

// listFullFD is listFull of the directory open as fd: readDirFD's
// listing, with each entry's xattrs and symlink target.
func listFullFD(t *tree, fd int, dp string, root bool) ([]FullEntry, error) {
	ents, err := readDirFD(t, fd, dp, root)
	if err != nil {
		return nil, err
	}
	out := make([]FullEntry, 0, len(ents))
	var lbuf [4096]byte
	for _, de := range ents {
		n := de.Name
		p := dp + "/" + n
		e := FullEntry{DirEntry: de}
		if e.Xattrs, err = dirXattrs(fd, n, p); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return nil, &fs.PathError{Op: "listxattr", Path: p, Err: err}
		}
		if e.Mode == sIFLNK {
			k, err := unix.Readlinkat(fd, n, lbuf[:])
			if err != nil {
				if err == unix.ENOENT {
					continue
				}
				return nil, &fs.PathError{Op: "readlink", Path: p, Err: err}
			}
			e.Link = string(lbuf[:k])
		}
		out = append(out, e)
	}
	return out, nil
}

// dirXattrs reads the xattrs of entry in directory dfd (path p) but
// replfs's own, with one listxattr when it has none (the common case)
// instead of the two a size query costs. dfd < 0: by path.
func dirXattrs(dfd int, entry, p string) (Xattrs, error) {
	var buf [1024]byte
	n, err := listxattrAt(dfd, entry, p, buf[:])
	if err == unix.ERANGE {
		return readXattrs(p)
	}
	if err != nil {
		if err == unix.ENOTSUP {
			return nil, nil
		}
		return nil, err
	}
	return userXattrs(buf[:n], func(name string) ([]byte, error) {
		return xattrValue(func(b []byte) (int, error) { return getxattrAt(dfd, entry, p, name, b) })
	})
}

// xattrAt: whether the kernel has getxattrat(2)/listxattrat(2) (Linux
// 6.13): 0 not known yet, 1 yes, -1 no (then paths are walked again).
var xattrAt atomic.Int32

type xattrArgs struct {
	value uint64
	size  uint32
	flags uint32
}

// atResult takes the result of a getxattrat/listxattrat call and records
// whether the kernel has them; ok is false when it has not (ENOSYS), and
// the caller walks the path instead.
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

// getxattrAt reads xattr attr of entry in directory dfd without
// following a symlink; by path p when dfd < 0 or the kernel lacks
// getxattrat.
func getxattrAt(dfd int, entry, p, attr string, buf []byte) (int, error) {
	if dfd >= 0 && xattrAt.Load() >= 0 {
		ep, err := unix.BytePtrFromString(entry)
		if err != nil {
			return 0, err
		}
		ap, err := unix.BytePtrFromString(attr)
		if err != nil {
			return 0, err
		}
		args := xattrArgs{size: uint32(len(buf))}
		if len(buf) > 0 {
			args.value = uint64(uintptr(unsafe.Pointer(&buf[0])))
		}
		r, _, e := unix.Syscall6(unix.SYS_GETXATTRAT, uintptr(dfd), uintptr(unsafe.Pointer(ep)),
			unix.AT_SYMLINK_NOFOLLOW, uintptr(unsafe.Pointer(ap)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
		runtime.KeepAlive(buf)
		if n, ok, err := atResult(r, e); ok {
			return n, err
		}
	}
	return unix.Lgetxattr(p, attr, buf)
}

// listxattrAt lists the xattr names of entry in directory dfd, as
// getxattrAt reads one.
func listxattrAt(dfd int, entry, p string, buf []byte) (int, error) {
	if dfd >= 0 && xattrAt.Load() >= 0 {
		ep, err := unix.BytePtrFromString(entry)
		if err != nil {
			return 0, err
		}
		var bp unsafe.Pointer
		if len(buf) > 0 {
			bp = unsafe.Pointer(&buf[0])
		}
		r, _, e := unix.Syscall6(unix.SYS_LISTXATTRAT, uintptr(dfd), uintptr(unsafe.Pointer(ep)),
			unix.AT_SYMLINK_NOFOLLOW, uintptr(bp), uintptr(len(buf)), 0)
		runtime.KeepAlive(buf)
		if n, ok, err := atResult(r, e); ok {
			return n, err
		}
	}
	return unix.Llistxattr(p, buf)
}

// fullEntry reads one entry as listFull does (for the re-check).
func fullEntry(t *tree, p string, st *unix.Stat_t) (FullEntry, error) {
	e := FullEntry{DirEntry: DirEntry{Mode: st.Mode & sIFMT, Attr: attrOf(st)}}
	var err error
	if e.GFID, err = t.gfidAt(p); err != nil {
		return e, err
	}
	if e.Xattrs, err = dirXattrs(-1, "", p); err != nil {
		return e, err
	}
	if e.Mode == sIFLNK {
		var lbuf [4096]byte
		k, err := unix.Readlink(p, lbuf[:])
		if err != nil {
			return e, err
		}
		e.Link = string(lbuf[:k])
	}
	return e, nil
}
