package replicator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// brickTree reads the brick side: never written by the replicator.
type brickTree struct {
	tree
}

// stat returns a path reaching g on the brick and its attributes.
func (b *brickTree) stat(g gfid.GFID) (string, target.Attr, error) {
	p, st, err := b.statGFID(g)
	if err != nil {
		return "", target.Attr{}, err
	}
	return p, target.AttrOf(&st), nil
}

func (b *brickTree) readDir(g gfid.GFID) ([]target.DirEntry, error) {
	dp, err := b.dirPath(g)
	if err != nil {
		return nil, err
	}
	return readDir(&b.tree, dp, g == gfid.Root)
}

// at returns p when it (a path a walk found) holds g, else "".
func (b *brickTree) at(p string, g gfid.GFID) string {
	if p == "" {
		return ""
	}
	if g == gfid.Root {
		return b.root
	}
	if got, err := b.gfidAt(p); err == nil && got == g {
		return p
	}
	return ""
}

// xtimeOf reads directory g's xtime; ok is false when it has none.
func (b *brickTree) xtimeOf(p string) (int64, bool) {
	var v [12]byte
	n, err := unix.Lgetxattr(p, b.xtime, v[:])
	if err != nil || n != 12 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(v[:8]))*1e9 + int64(binary.BigEndian.Uint32(v[8:])), true
}

// openAt opens regular file g through its path p (found by a walk: the
// directory is warm, the index may not be), falling back to the index
// when p no longer holds g. listed is p's inode as the walk saw it: when
// the open finds that inode unchanged (same inode number and ctime, which
// any xattr change moves), its gfid is known without reading it.
func (b *brickTree) openAt(p string, g gfid.GFID, listed target.Attr) (srcFile, target.Attr, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME|unix.O_NOFOLLOW, 0)
	if err == nil {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&sIFMT == sIFREG {
			if listed.Ctime != 0 && st.Ino == listed.Ino && st.Ctim.Nano() == listed.Ctime {
				return srcFile{fd, p}, target.AttrOf(&st), nil
			}
			var v [16]byte
			if n, xerr := unix.Fgetxattr(fd, b.gfidX, v[:]); xerr == nil && n == 16 && gfid.GFID(v) == g {
				return srcFile{fd, p}, target.AttrOf(&st), nil
			}
		}
		unix.Close(fd)
	}
	return b.openIndex(g)
}

// srcFile is a brick file open for reading, without the os.File around it
// (whose making costs a fcntl per file): the crawl opens every file.
type srcFile struct {
	fd   int
	name string
}

func (f srcFile) close() {
	if f.fd >= 0 {
		unix.Close(f.fd)
	}
}

// open opens regular file g for reading without touching its atime.
func (b *brickTree) open(g gfid.GFID) (*os.File, target.Attr, error) {
	f, a, err := b.openIndex(g)
	if err != nil {
		return nil, a, err
	}
	return os.NewFile(uintptr(f.fd), f.name), a, nil
}

// openIndex opens regular file g through its index entry.
func (b *brickTree) openIndex(g gfid.GFID) (srcFile, target.Attr, error) {
	ip := b.indexPath(g)
	fd, err := unix.Open(ip, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME|unix.O_NOFOLLOW, 0)
	if err == unix.EPERM {
		fd, err = unix.Open(ip, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		if err == unix.ENOENT {
			return srcFile{-1, ""}, target.Attr{}, errNoEntry
		}
		return srcFile{-1, ""}, target.Attr{}, &fs.PathError{Op: "open", Path: ip, Err: err}
	}
	f := srcFile{fd, ip}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.close()
		return srcFile{-1, ""}, target.Attr{}, err
	}
	if st.Mode&sIFMT != sIFREG {
		f.close()
		return srcFile{-1, ""}, target.Attr{}, fmt.Errorf("%s is not a regular file", ip)
	}
	if st.Nlink <= 1 {
		f.close()
		return srcFile{-1, ""}, target.Attr{}, errNoEntry
	}
	return f, target.AttrOf(&st), nil
}

func isNoEntry(err error) bool { return errors.Is(err, fs.ErrNotExist) }
