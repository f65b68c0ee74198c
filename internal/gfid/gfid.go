// Package gfid holds the identity replfs gives every inode of a brick: a
// 16-byte UUID kept in an xattr, stable across renames and shared by hard
// links, and the gfid index layout under .replfs/gfid that reaches any inode
// by its gfid.
package gfid

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
)

// GFID is the identity of one inode.
type GFID [16]byte

// Root is the fixed gfid of a brick's root directory.
var Root = GFID{15: 1}

// Zero is the unset gfid.
var Zero GFID

// Xattr names. trusted.* is used where the brick allows it (root on a
// normal filesystem); user.* otherwise.
const (
	XattrTrusted  = "trusted.replfs.gfid"
	XattrUser     = "user.replfs.gfid"
	XtimeTrusted  = "trusted.replfs.xtime"
	XtimeUser     = "user.replfs.xtime"
	PrefixTrusted = "trusted.replfs."
	PrefixUser    = "user.replfs."
	StateDir      = ".replfs"
	// BrickPathXattr, read on the root of a replfs mount, gives the
	// brick's absolute path: mount(8) shows the fsname= name in its
	// place when one is set. Not listed, not settable.
	BrickPathXattr   = "user.replfs.brick"
	IndexDir         = ".replfs/gfid"
	ErrBadGFIDString = constErr("malformed gfid")
)

type constErr string

func (e constErr) Error() string { return string(e) }

// RunLength is how many gfids in a row New gives the same first two bytes,
// the xx/yy directory of the gfid index they are filed in.
const RunLength = 64

var (
	runSeq  atomic.Uint64
	runSeed = func() uint64 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic(fmt.Sprintf("crypto/rand: %v", err))
		}
		return binary.LittleEndian.Uint64(b[:])
	}()
)

// New returns a version 4 gfid: random, but for its first two bytes,
// which runs of RunLength gfids made one after the other share (each run
// picks them pseudo-randomly). Those bytes name the gfid-index directory
// an inode is filed in: with all sixteen bytes random, nearly every
// create on a young brick or mirror made a new xx/yy directory (a mkdir
// per file, until 65,536 of them exist); in runs, a burst of creates
// fills one directory, while over time the directories are used evenly.
// Uniqueness rests on the other 106 random bits.
func New() GFID {
	var g GFID
	if _, err := rand.Read(g[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	run := mix(runSeed + (runSeq.Add(1)-1)/RunLength)
	g[0], g[1] = byte(run>>8), byte(run)
	g[6] = (g[6] & 0x0f) | 0x40
	g[8] = (g[8] & 0x3f) | 0x80
	return g
}

// mix is splitmix64's finalizer: consecutive runs land far apart.
func mix(x uint64) uint64 {
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// IsZero reports whether g is unset.
func (g GFID) IsZero() bool { return g == Zero }

// String formats g as a canonical UUID.
func (g GFID) String() string {
	var b [36]byte
	g.encode(b[:])
	return string(b[:])
}

func (g GFID) encode(b []byte) {
	hex.Encode(b[0:8], g[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], g[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], g[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], g[8:10])
	b[23] = '-'
	hex.Encode(b[24:], g[10:])
}

// Parse reads a canonical UUID string.
func Parse(s string) (GFID, error) {
	var g GFID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("%w: %q", ErrBadGFIDString, s)
	}
	parts := [][2]int{{0, 8}, {9, 13}, {14, 18}, {19, 23}, {24, 36}}
	o := 0
	for _, p := range parts {
		n, err := hex.Decode(g[o:], []byte(s[p[0]:p[1]]))
		if err != nil {
			return GFID{}, fmt.Errorf("%w: %q", ErrBadGFIDString, s)
		}
		o += n
	}
	return g, nil
}

// FromBytes reads the raw 16-byte xattr value.
func FromBytes(b []byte) (GFID, error) {
	var g GFID
	if len(b) != len(g) {
		return g, errors.New("gfid xattr has wrong length")
	}
	copy(g[:], b)
	return g, nil
}

// IndexPath is the path of g's entry in the gfid index, relative to the
// brick root: .replfs/gfid/xx/yy/<gfid>.
func (g GFID) IndexPath() string {
	s := g.String()
	return filepath.Join(IndexDir, s[0:2], s[2:4], s)
}

// DirPointer is the symlink target stored in the index for a directory
// whose parent is parent and whose name is name, relative to the index
// entry's own directory (GlusterFS style: ../../xx/yy/<parent>/<name>).
func DirPointer(parent GFID, name string) string {
	s := parent.String()
	return filepath.Join("../..", s[0:2], s[2:4], s, name)
}

// RootPointer is the symlink target of the root's index entry: the brick
// root itself.
const RootPointer = "../../../.."
