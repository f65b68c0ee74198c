package replicator

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// How a mirror makes a new regular file: through its descriptor only, with
// no syscall whose effect is already there. An initial sync makes every
// file of the brick this way, so each syscall saved here is saved per file.

// creator holds what the mirror learnt at Open about files it creates:
// which owner and mode they get without fchown and fchmod.
type creator struct {
	uid, gid  uint32
	umask     uint32 // ^0 when unknown
	finalMode bool   // files may be created with their final permissions
	chownAll  bool   // the index inherits a set-gid group: always chown
}

// initCreator reads the process's identity and umask, and whether the
// index hands its group down.
func (m *Mirror) initCreator() {
	c := creator{uid: uint32(os.Geteuid()), gid: uint32(os.Getegid()), umask: readUmask()}
	// As root in the trusted namespace, a file created read-only can still
	// take xattrs and content through the descriptor that created it (a
	// user.* xattr needs write permission on the inode otherwise).
	c.finalMode = c.uid == 0 && m.info.Xattr == "trusted" && c.umask != ^uint32(0)
	var st unix.Stat_t
	if fd, err := m.openRel(gfid.IndexDir); err != nil {
		c.chownAll = true
	} else {
		if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_ISGID != 0 {
			c.chownAll = true
		}
		unix.Close(fd)
	}
	m.cr = c
}

// readUmask reads the umask from /proc (reading it with umask(2) would
// change it for every thread for a moment); ^0 when it cannot.
func readUmask() uint32 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return ^uint32(0)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
			if u, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return uint32(u)
			}
		}
	}
	return ^uint32(0)
}

// createMode is the mode to create a file for a with, and whether fchmod
// is still needed after it.
func (c *creator) createMode(a target.Attr) (uint32, bool) {
	want := a.Mode & 0o7777
	if !c.finalMode {
		return 0o600, true
	}
	perm := a.Mode & 0o777
	return perm, perm&^c.umask != want || c.needChown(a)
}

// needChown: chown is a no-op when the new file already has a's owner
// (and, done by root, it would clear set-id bits fchmod sets back).
func (c *creator) needChown(a target.Attr) bool {
	return c.chownAll || a.UID != c.uid || a.GID != c.gid
}

// openNew creates dfd/name (an index entry or a temporary file) as a new
// regular file for writing; a leftover of a transfer cut short is
// replaced, a live entry is fs.ErrExist.
func (m *Mirror) openNew(dfd int, name string, mode uint32) (int, error) {
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dfd, name, flags, mode)
	if err == unix.EEXIST {
		var st unix.Stat_t
		if unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Nlink > 1 {
			return -1, fs.ErrExist // the target has g already
		}
		unix.Unlinkat(dfd, name, 0) // left by a transfer cut short
		fd, err = unix.Openat(dfd, name, flags, mode)
	}
	if err != nil {
		if err == unix.EEXIST {
			return -1, fs.ErrExist
		}
		return -1, &fs.PathError{Op: "create", Path: name, Err: err}
	}
	return fd, nil
}

// fillFD writes a new file's content (a.Size bytes of src), identity and
// attributes through its descriptor fd, and closes it. Owner goes before
// the xattrs (chown drops security.capability) and the mode after them
// (without privilege, a read-only file takes no user.* xattr).
func (m *Mirror) fillFD(fd int, name string, chmod bool, g gfid.GFID, src target.Source, a target.Attr, x target.Xattrs, refs []nameRef) (int64, error) {
	n, err := m.copySource(fd, src, src.Size())
	if err == nil {
		err = unix.Fsetxattr(fd, m.t.gfidX, g[:], 0)
	}
	if err == nil && len(refs) > 0 {
		err = unix.Fsetxattr(fd, m.namesX, encodeNames(refs), 0)
	}
	if err == nil && m.cr.needChown(a) {
		err = unix.Fchown(fd, int(a.UID), int(a.GID))
	}
	for k, v := range x {
		if err == nil {
			if xerr := unix.Fsetxattr(fd, k, v, 0); xerr != nil {
				err = &xattrError{k, xerr}
			}
		}
	}
	if err == nil && chmod {
		err = unix.Fchmod(fd, a.Mode&0o7777)
	}
	if err == nil {
		ts := []unix.Timespec{unix.NsecToTimespec(a.Atime), unix.NsecToTimespec(a.Mtime)}
		err = unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("write %s: %w", name, err)
	}
	return n, nil
}

// copySource copies size bytes of src from offset 0 to the new file dst:
// kernel-side from a descriptor of this host, else through ReadAt.
func (m *Mirror) copySource(dst int, src target.Source, size int64) (int64, error) {
	if f, ok := src.(target.FDSource); ok {
		return m.copyFD(dst, f.FD(), size)
	}
	buf := make([]byte, min(size, 1<<20))
	var off int64
	for off < size {
		n, err := src.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		for w := 0; w < n; {
			k, werr := unix.Pwrite(dst, buf[w:n], off)
			if werr == unix.EINTR {
				continue
			}
			if werr != nil {
				return off, werr
			}
			w += k
			off += int64(k)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return off, err
		}
	}
	return off, nil
}

// copyFD copies size bytes of src from offset 0 to the new file dst:
// copy_file_range where the two filesystems allow it, else sendfile, else
// read and write. A source that shrank meanwhile ends the copy early; one
// that grew is caught by the data record of that write.
func (m *Mirror) copyFD(dst int, sfd int, size int64) (int64, error) {
	var off int64
	if !m.noCopyRange.Load() {
		for off < size {
			n, err := unix.CopyFileRange(sfd, &off, dst, nil, int(min(size-off, 1<<30)), 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				if off == 0 && copyUnsupported(err) {
					m.noCopyRange.Store(true)
					break
				}
				return off, err
			}
			if n == 0 {
				return off, nil
			}
		}
		if off >= size {
			return off, nil
		}
	}
	for off < size {
		n, err := unix.Sendfile(dst, sfd, &off, int(min(size-off, 1<<30)))
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			if off == 0 && copyUnsupported(err) {
				return readWrite(dst, sfd, size)
			}
			return off, err
		}
		if n == 0 {
			break
		}
	}
	return off, nil
}

func copyUnsupported(err error) bool {
	return err == unix.EXDEV || err == unix.ENOSYS || err == unix.EOPNOTSUPP || err == unix.EINVAL
}

func readWrite(dst, src int, size int64) (int64, error) {
	buf := make([]byte, min(size, 1<<20))
	var off int64
	for off < size {
		n, err := unix.Pread(src, buf[:min(int64(len(buf)), size-off)], off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return off, err
		}
		if n == 0 {
			break
		}
		for w := 0; w < n; {
			k, err := unix.Write(dst, buf[w:n])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return off, err
			}
			w += k
		}
		off += int64(n)
	}
	return off, nil
}

// listXattrs returns the xattr name list that list reads, whatever its
// size.
func listXattrs(list func([]byte) (int, error)) ([]byte, error) {
	return growRead(make([]byte, 1024), list)
}

// userXattrs reads, with get, the xattrs named in list (as listxattr(2)
// returns it) but replfs's own; one removed meanwhile is left out.
func userXattrs(list []byte, get func(name string) ([]byte, error)) (target.Xattrs, error) {
	var x target.Xattrs
	for len(list) > 0 {
		k := bytes.IndexByte(list, 0)
		if k < 0 {
			k = len(list)
		}
		name := list[:k]
		list = list[min(k+1, len(list)):]
		if len(name) == 0 || ownXattr(string(name)) {
			continue
		}
		n := string(name)
		v, err := get(n)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue
			}
			return nil, err
		}
		if x == nil {
			x = make(target.Xattrs)
		}
		x[n] = v
	}
	return x, nil
}

// xattrValue reads one xattr value with get, whatever its size.
func xattrValue(get func([]byte) (int, error)) ([]byte, error) {
	return growRead(make([]byte, 256), get)
}

// growRead reads with get into buf first and, while get says ERANGE, into
// a buffer of the size get(nil) reports, with room for some growth.
func growRead(buf []byte, get func([]byte) (int, error)) ([]byte, error) {
	slack := len(buf)
	for {
		n, err := get(buf)
		if err == unix.ERANGE {
			size, err := get(nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, size+slack)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// readXattrs reads every xattr of p but replfs's own.
func readXattrs(p string) (target.Xattrs, error) {
	list, err := listXattrs(func(b []byte) (int, error) { return unix.Llistxattr(p, b) })
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, &fs.PathError{Op: "listxattr", Path: p, Err: err}
	}
	return userXattrs(list, func(n string) ([]byte, error) { return xattr.LGet(p, n) })
}

// fdXattrs reads every xattr but replfs's own of file dir/name (name alone
// when dir is ""), open as fd: one flistxattr when it has none (the
// common case), without a size query. The path is joined only for an error.
func fdXattrs(fd int, dir, name string) (target.Xattrs, error) {
	var buf [1024]byte
	n, err := unix.Flistxattr(fd, buf[:])
	list := buf[:max(n, 0)]
	if err == unix.ERANGE {
		list, err = listXattrs(func(b []byte) (int, error) { return unix.Flistxattr(fd, b) })
	}
	if err == nil {
		var x target.Xattrs
		x, err = userXattrs(list, func(n string) ([]byte, error) {
			return xattrValue(func(b []byte) (int, error) { return unix.Fgetxattr(fd, n, b) })
		})
		if err == nil {
			return x, nil
		}
	}
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	return nil, &fs.PathError{Op: "xattrs", Path: joinRel(dir, name), Err: err}
}

// prefetch asks the kernel to start reading the head of a file the pool
// will copy soon: the crawl keeps many reads in flight where each copy
// alone would wait for its own.
func prefetch(fd int, size int64) {
	if size > 0 {
		unix.Fadvise(fd, 0, min(size, prefetchMax), unix.FADV_WILLNEED)
	}
}

// prefetchMax bounds what one file prefetches (the kernel's own readahead
// takes over after it); with the pool's queue it bounds memory in flight.
const prefetchMax = 1 << 20
