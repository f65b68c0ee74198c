package fs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/layout"
)

// index maintains the gfid index of a brick (.replfs/gfid). All calls are
// relative to an open descriptor of the index directory.
type index struct {
	brick string
	fd    int
	gfidX string
	// made marks the xx and xx/yy directories known to exist (bit i of
	// made[0:8] for xx, bit xx<<8|yy of made[8:] for xx/yy), so a new gfid
	// costs one linkat/symlinkat instead of a failed call and two mkdirs.
	made [8 + 2048]atomic.Uint32
}

func (x *index) known(bit int) bool { return x.made[bit>>5].Load()&(1<<(bit&31)) != 0 }

func (x *index) mark(bit int) {
	w := &x.made[bit>>5]
	for {
		old := w.Load()
		if w.CompareAndSwap(old, old|1<<(bit&31)) {
			return
		}
	}
}

func openIndex(b *Brick) (*index, error) {
	fd, err := unix.Open(b.IndexDir(), unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open gfid index: %w", err)
	}
	return &index{brick: b.Path, fd: fd, gfidX: b.GFIDXattr}, nil
}

func (x *index) close() { unix.Close(x.fd) }

// rel is g's path relative to the index directory: xx/yy/<gfid>.
func rel(g gfid.GFID) string {
	s := g.String()
	return s[0:2] + "/" + s[2:4] + "/" + s
}

func (x *index) mkParents(g gfid.GFID) error {
	xxBit, yyBit := int(g[0]), 256+(int(g[0])<<8|int(g[1]))
	if x.known(yyBit) {
		return nil
	}
	s := g.String()
	if !x.known(xxBit) {
		if err := unix.Mkdirat(x.fd, s[0:2], 0o700); err != nil && err != unix.EEXIST {
			return err
		}
		x.mark(xxBit)
	}
	if err := unix.Mkdirat(x.fd, s[0:2]+"/"+s[2:4], 0o700); err != nil && err != unix.EEXIST {
		return err
	}
	x.mark(yyBit)
	return nil
}

// withParents makes sure g's xx/yy directories exist, then runs op. The
// directories are made lazily, once per mount at most.
func (x *index) withParents(g gfid.GFID, op func() error) error {
	if err := x.mkParents(g); err != nil {
		return err
	}
	err := op()
	if err == unix.ENOENT {
		// Removed behind our back: make them again.
		x.made[8+(int(g[0])<<8|int(g[1]))>>5].Store(0)
		x.made[int(g[0])>>5].Store(0)
		if err := x.mkParents(g); err != nil {
			return err
		}
		err = op()
	}
	return err
}

// addLink adds the hard-link entry of a non-directory found at brick path p.
func (x *index) addLink(g gfid.GFID, p string) error {
	r := rel(g)
	err := x.withParents(g, func() error { return unix.Linkat(unix.AT_FDCWD, p, x.fd, r, 0) })
	if err == unix.EEXIST {
		return nil
	}
	return err
}

// setDir points a directory's entry at parent/name, replacing any old one
// atomically.
func (x *index) setDir(g, parent gfid.GFID, name string) error {
	target := gfid.DirPointer(parent, name)
	if g == gfid.Root {
		target = gfid.RootPointer
	}
	r := rel(g)
	err := x.withParents(g, func() error { return unix.Symlinkat(target, x.fd, r) })
	if err != unix.EEXIST {
		return err
	}
	tmp := r + ".new"
	unix.Unlinkat(x.fd, tmp, 0)
	if err := unix.Symlinkat(target, x.fd, tmp); err != nil {
		return err
	}
	return unix.Renameat(x.fd, tmp, x.fd, r)
}

// remove drops g's entry.
func (x *index) remove(g gfid.GFID) error {
	err := unix.Unlinkat(x.fd, rel(g), 0)
	if err == unix.ENOENT {
		return nil
	}
	return err
}

// dropIfLast removes a non-directory's entry when the index holds its only
// remaining link, i.e. its last name in the brick is gone.
func (x *index) dropIfLast(g gfid.GFID) error {
	var st unix.Stat_t
	r := rel(g)
	if err := unix.Fstatat(x.fd, r, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return err
	}
	if st.Nlink <= 1 {
		return x.remove(g)
	}
	return nil
}

// DirPath returns a directory's path relative to the brick by walking its
// chain of parent pointers (no kernel symlink-depth limit).
func DirPath(brick string, g gfid.GFID) (string, error) {
	var parts []string
	for i := 0; g != gfid.Root; i++ {
		if i > 4096 {
			return "", errors.New("gfid index: pointer loop")
		}
		ip := filepath.Join(brick, g.IndexPath())
		// Only a single-link symlink of the exact pointer shape is a
		// directory pointer: a user's symlink is indexed by a hard link.
		var st unix.Stat_t
		if err := unix.Lstat(ip, &st); err != nil {
			return "", &os.PathError{Op: "lstat", Path: ip, Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Nlink != 1 {
			return "", fmt.Errorf("gfid index: %s is not a directory pointer", g)
		}
		t, err := os.Readlink(ip)
		if err != nil {
			return "", err
		}
		pg, name, err := layout.ParsePointer(t)
		if err != nil {
			return "", fmt.Errorf("gfid index: bad pointer %q for %s", t, g)
		}
		parts = append(parts, name)
		g = pg
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return filepath.Join(parts...), nil
}

// xtime codec: 8-byte seconds and 4-byte nanoseconds, big endian.
func encodeXtime(b *[12]byte, ns int64) {
	binary.BigEndian.PutUint64(b[0:8], uint64(ns/1e9))
	binary.BigEndian.PutUint32(b[8:12], uint32(ns%1e9))
}

// DecodeXtime reads an xtime xattr value as unix nanoseconds.
func DecodeXtime(b []byte) (int64, error) {
	if len(b) != 12 {
		return 0, errors.New("xtime xattr has wrong length")
	}
	return int64(binary.BigEndian.Uint64(b[0:8]))*1e9 + int64(binary.BigEndian.Uint32(b[8:12])), nil
}
