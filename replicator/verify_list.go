package replicator

import (
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/contenthash"
	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/layout"
	"github.com/replfs/replfs/internal/target"
)

func openDir(dp string) (int, error) {
	fd, err := unix.Open(dp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: dp, Err: err}
	}
	return fd, nil
}

// listFullFD lists directory dp of tree t, open as fd, with each entry's
// attributes, gfid, xattrs and symlink target, reading everything relative
// to fd so that no path is walked again: three system calls an entry
// without xattrs of its own.
//
// Regular files smaller than hashBelow are also hashed: each is opened
// once and its attributes, gfid, xattrs and content are read through that
// descriptor (six system calls in all, where listing and hashing apart
// cost seven and walk the name four times).
func listFullFD(t *tree, fd int, dp string, root bool, hashBelow int64) ([]target.FullEntry, error) {
	names, err := readNamesFD(fd, dp)
	if err != nil {
		return nil, err
	}
	out := make([]target.FullEntry, 0, len(names))
	for _, d := range names {
		if root && d.name == gfid.StateDir {
			continue
		}
		var e target.FullEntry
		var ok bool
		if hashBelow > 0 && d.typ == unix.DT_REG {
			e, ok, err = openEntry(t, fd, dp, d.name, hashBelow)
		} else {
			e, ok, err = statEntry(t, fd, dp, d.name)
		}
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// statEntry reads entry name of directory dfd (path dp) for listFullFD;
// ok is false when it is gone.
func statEntry(t *tree, dfd int, dp, name string) (e target.FullEntry, ok bool, err error) {
	p := dp + "/" + name
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return e, false, nil
		}
		return e, false, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	e = target.FullEntry{DirEntry: target.DirEntry{Name: name, Mode: st.Mode & sIFMT, Attr: target.AttrOf(&st)}}
	var g [16]byte
	k, err := getxattrAt(dfd, name, p, t.gfidX, g[:])
	switch {
	case err == nil && k == 16:
		e.GFID = gfid.GFID(g)
	case err == unix.ENOENT:
		return e, false, nil
	case err != nil && err != unix.ENODATA && err != unix.ERANGE:
		return e, false, &fs.PathError{Op: "getxattr gfid", Path: p, Err: err}
	}
	if e.Xattrs, err = dirXattrs(dfd, name, p); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return e, false, nil
		}
		return e, false, &fs.PathError{Op: "listxattr", Path: p, Err: err}
	}
	if e.Mode == sIFLNK {
		var lbuf [4096]byte
		k, err := unix.Readlinkat(dfd, name, lbuf[:])
		if err != nil {
			if err == unix.ENOENT {
				return e, false, nil
			}
			return e, false, &fs.PathError{Op: "readlink", Path: p, Err: err}
		}
		e.Link = string(lbuf[:k])
	}
	return e, true, nil
}

// openEntry is statEntry for a regular file that is also hashed when it
// is smaller than hashBelow: everything is read through one descriptor.
// The open neither follows a symlink nor waits (a name that became a fifo
// since the directory was read); a name that is no longer a regular file,
// or cannot be opened, is read by statEntry.
func openEntry(t *tree, dfd int, dp, name string, hashBelow int64) (target.FullEntry, bool, error) {
	const flags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK
	fd, err := unix.Openat(dfd, name, flags|unix.O_NOATIME, 0)
	if err == unix.EPERM { // O_NOATIME on a file of another owner, without CAP_FOWNER
		fd, err = unix.Openat(dfd, name, flags, 0)
	}
	if err != nil {
		if err == unix.ENOENT {
			return target.FullEntry{}, false, nil
		}
		e, ok, serr := statEntry(t, dfd, dp, name)
		if ok && serr == nil && e.Mode == sIFREG && e.Attr.Size < hashBelow {
			e.Hashed = true
			e.HashErr = &fs.PathError{Op: "open", Path: dp + "/" + name, Err: err}
		}
		return e, ok, serr
	}
	defer unix.Close(fd)
	p := func() string { return dp + "/" + name } // for errors only
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return target.FullEntry{}, false, &fs.PathError{Op: "fstat", Path: p(), Err: err}
	}
	if st.Mode&sIFMT != sIFREG {
		return statEntry(t, dfd, dp, name)
	}
	e := target.FullEntry{DirEntry: target.DirEntry{Name: name, Mode: sIFREG, Attr: target.AttrOf(&st)}}
	var g [16]byte
	k, err := unix.Fgetxattr(fd, t.gfidX, g[:])
	switch {
	case err == nil && k == 16:
		e.GFID = gfid.GFID(g)
	case err != nil && err != unix.ENODATA && err != unix.ERANGE:
		return e, false, &fs.PathError{Op: "getxattr gfid", Path: p(), Err: err}
	}
	if e.Xattrs, err = fdXattrs(fd, dp, name); err != nil {
		return e, false, err
	}
	if st.Size < hashBelow {
		e.Hashed = true
		e.Sum, e.N, err = contenthash.FD(fd, st.Size)
		if err != nil {
			e.HashErr = &fs.PathError{Op: "read", Path: p(), Err: err}
		}
	}
	return e, true, nil
}

// dirXattrs reads the xattrs of entry in directory dfd (path p) but
// replfs's own, with one listxattr when it has none (the common case)
// instead of the two a size query costs. dfd < 0: by path.
func dirXattrs(dfd int, entry, p string) (target.Xattrs, error) {
	var buf [1024]byte
	n, err := listxattrAt(dfd, entry, p, buf[:])
	if err == unix.ERANGE {
		if dfd >= 0 {
			return xattrsAt(dfd, entry)
		}
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

// getxattrAt reads xattr attr of entry in directory dfd without
// following a symlink; by path p only when dfd < 0 (a path the caller
// resolved itself).
func getxattrAt(dfd int, entry, p, attr string, buf []byte) (int, error) {
	if dfd >= 0 {
		return layout.Getxattr(dfd, entry, attr, buf)
	}
	return unix.Lgetxattr(p, attr, buf)
}

// listxattrAt lists the xattr names of entry in directory dfd, as
// getxattrAt reads one.
func listxattrAt(dfd int, entry, p string, buf []byte) (int, error) {
	if dfd >= 0 {
		return layout.Listxattr(dfd, entry, buf)
	}
	return unix.Llistxattr(p, buf)
}

// fullEntry reads one entry as listFull does (for the re-check).
func fullEntry(t *tree, p string, st *unix.Stat_t) (target.FullEntry, error) {
	e := target.FullEntry{DirEntry: target.DirEntry{Mode: st.Mode & sIFMT, Attr: target.AttrOf(st)}}
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
