package replicator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
)

// brickTree reads the brick side: never written by the replicator.
type brickTree struct {
	tree
}

// stat returns a path reaching g on the brick and its attributes.
func (b *brickTree) stat(g gfid.GFID) (string, Attr, error) {
	p, st, err := b.statGFID(g)
	if err != nil {
		return "", Attr{}, err
	}
	return p, attrOf(&st), nil
}

func (b *brickTree) readDir(g gfid.GFID) ([]DirEntry, error) {
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
// when p no longer holds g.
func (b *brickTree) openAt(p string, g gfid.GFID) (*os.File, Attr, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME|unix.O_NOFOLLOW, 0)
	if err == nil {
		var v [16]byte
		var st unix.Stat_t
		if n, xerr := unix.Fgetxattr(fd, b.gfidX, v[:]); xerr == nil && n == 16 && gfid.GFID(v) == g &&
			unix.Fstat(fd, &st) == nil && st.Mode&sIFMT == sIFREG {
			return os.NewFile(uintptr(fd), p), attrOf(&st), nil
		}
		unix.Close(fd)
	}
	return b.open(g)
}

// open opens regular file g for reading without touching its atime.
func (b *brickTree) open(g gfid.GFID) (*os.File, Attr, error) {
	ip := b.indexPath(g)
	fd, err := unix.Open(ip, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME|unix.O_NOFOLLOW, 0)
	if err == unix.EPERM {
		fd, err = unix.Open(ip, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		if err == unix.ENOENT {
			return nil, Attr{}, errNoEntry
		}
		return nil, Attr{}, &fs.PathError{Op: "open", Path: ip, Err: err}
	}
	f := os.NewFile(uintptr(fd), ip)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, Attr{}, err
	}
	if st.Mode&sIFMT != sIFREG {
		f.Close()
		return nil, Attr{}, fmt.Errorf("%s is not a regular file", ip)
	}
	if st.Nlink <= 1 {
		f.Close()
		return nil, Attr{}, errNoEntry
	}
	return f, attrOf(&st), nil
}

func isNoEntry(err error) bool { return errors.Is(err, fs.ErrNotExist) }
