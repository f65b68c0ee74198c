package replicator

import (
	"os"
	"time"

	"github.com/replfs/replfs/internal/contenthash"
	"github.com/replfs/replfs/internal/gfid"
)

// Attr is what a target keeps of one inode besides its name and content.
type Attr struct {
	Mode  uint32 // file type and permission bits, as st_mode
	UID   uint32
	GID   uint32
	Rdev  uint64
	Size  int64
	Atime int64 // unix nanoseconds
	Mtime int64
	Ino   uint64 // the target's own inode number (hard-link groups); ignored when setting
	Nlink uint32 // the target's link count, index link excluded; ignored when setting
	Ctime int64  // status change time, unix ns, as read; ignored when setting
}

// Type returns the file type bits.
func (a Attr) Type() uint32 { return a.Mode & sIFMT }

// DirEntry is one name of a directory listing.
type DirEntry struct {
	Name string
	GFID gfid.GFID // zero when the entry has none (made behind replfs's back)
	Mode uint32    // type bits only
	Attr Attr      // the entry's attributes, as listed
}

// Xattrs maps user-visible xattr names to values (replfs's own excluded).
type Xattrs map[string][]byte

// Meta selects what SetMeta changes.
type Meta uint8

const (
	MetaOwner Meta = 1 << iota
	MetaMode
	MetaXattrs
	MetaTimes
	MetaAll = MetaOwner | MetaMode | MetaXattrs | MetaTimes
)

// Target is where a worker replicates to. Every operation names inodes by
// gfid; a target refuses to remove or overwrite an entry whose gfid is not
// the one the call names (fs.ErrExist / errNoEntry), so that a conflict is
// seen by the worker and resolved there, never lost silently. The
// directory mirror implements it; a remote mirror and an erasure-coded
// fragment set are meant to.
type Target interface {
	Name() string // as configured (path or address)
	Kind() string // "mirror", ...
	// Open checks that the target is reachable and is (or can become) a
	// target of the brick brickID, and prepares it; Check repeats the
	// reachability test before each batch.
	Open(brickID string) error
	// Attach is Open for readers (verify): it changes nothing, and the
	// target must already be a target of brickID.
	Attach(brickID string) error
	Check() error
	Close() error

	Lookup(parent gfid.GFID, name string) (g gfid.GFID, a Attr, found bool, err error)
	Stat(g gfid.GFID) (Attr, error)
	ReadDir(dir gfid.GFID) ([]DirEntry, error)
	Xattrs(g gfid.GFID) (Xattrs, error)
	// Where returns directory g's parent and name.
	Where(g gfid.GFID) (gfid.GFID, string, error)

	// Make creates parent/name as inode g: a directory, an empty regular
	// file, a symlink to link, a device, fifo or socket, with a's owner
	// and mode and the given xattrs.
	Make(parent gfid.GFID, name string, g gfid.GFID, a Attr, link string, x Xattrs) error
	// CreateFile creates parent/name as regular file g holding src's
	// content (read from offset 0), with a's attributes; nothing is
	// visible at parent/name until it is complete.
	CreateFile(parent gfid.GFID, name string, g gfid.GFID, src *os.File, a Attr, x Xattrs) (int64, error)
	// WriteFile replaces the content of the existing regular file g under
	// every one of its names at once and sets a's attributes.
	WriteFile(g gfid.GFID, src *os.File, a Attr, x Xattrs) (int64, error)
	Link(g, parent gfid.GFID, name string) error
	Unlink(parent gfid.GFID, name string, g gfid.GFID) error
	Rmdir(parent gfid.GFID, name string, g gfid.GFID) error
	// Rename moves the name oldParent/oldName, which must hold g, to the
	// free name newParent/newName.
	Rename(g, oldParent gfid.GFID, oldName string, newParent gfid.GFID, newName string) error
	// Aside moves parent/name (holding g) out of the namespace into the
	// target's limbo, where a later Rename by gfid finds it.
	Aside(parent gfid.GFID, name string, g gfid.GFID) error
	// Adopt indexes parent/name, which holds g but is missing from the
	// target's index (a crash between making an entry and indexing it).
	Adopt(parent gfid.GFID, name string, g gfid.GFID) error
	// EmptyLimbo removes what is still in limbo and returns the count.
	EmptyLimbo() (int, error)
	SetMeta(g gfid.GFID, a Attr, x Xattrs, what Meta) error
	// Relink replaces parent/name, which holds a separate copy of g (not
	// the inode g's other names share), with a hard link to that inode.
	Relink(g, parent gfid.GFID, name string) error
	// Parents returns the directories holding non-directory g's names, as
	// far as the target knows (none when it does not hold g).
	Parents(g gfid.GFID) ([]gfid.GFID, error)
	// Repoint makes directory g's index entry lead to parent/name, which
	// holds it (List found the entry leading elsewhere: ErrIndexStale).
	Repoint(g, parent gfid.GFID, name string) error

	// List returns directory dir's entries with their xattrs, symlink
	// targets and index inodes: what a verify compares, in one call per
	// directory (one round trip for a remote target). The regular files
	// smaller than hashBelow (0: none) are hashed too (FullEntry.Hashed),
	// where the data is. LookupFull is List for one name, without hashing;
	// found is false when parent/name does not exist.
	List(dir gfid.GFID, hashBelow int64) ([]FullEntry, error)
	LookupFull(parent gfid.GFID, name string) (e FullEntry, found bool, err error)
	// Hash returns the HighwayHash-256 of regular file g's content (computed
	// where the data is, so that comparing costs no transfer) and its
	// length. size is the length the caller expects, or -1.
	Hash(g gfid.GFID, size int64) (contenthash.Sum, int64, error)
	// HashDir hashes the regular files reqs name in directory dir, filling
	// in each one's sum, length or error: one call (one round trip) per
	// directory.
	HashDir(dir gfid.GFID, reqs []HashReq) error

	// Sync makes everything applied so far durable.
	Sync() error
	Stime() (time.Time, error)
	SetStime(time.Time) error
}

// HashReq is one file of a HashDir call.
type HashReq struct {
	Name string
	Size int64 // expected length, or -1
	Sum  contenthash.Sum
	N    int64 // bytes read
	Err  error
}

// Optional capabilities: a target implements them where it can do better
// than the core calls; the engine falls back when one is missing.

// fdCreator is a target on this host that takes new content straight from
// the brick file's descriptor (copy_file_range), with no os.File around
// it. Fallback: CreateFile with an os.File of a duplicate descriptor.
type fdCreator interface {
	createFrom(parent gfid.GFID, name string, g gfid.GFID, src srcFile, a Attr, x Xattrs) (int64, error)
}

// treeRemover removes an entry with its whole subtree in one call: for
// directories made behind replfs's back (no gfid, so the engine cannot
// walk them by identity). Fallback: the entry is left, counted as a
// failure.
type treeRemover interface {
	RemoveAll(parent gfid.GFID, name string, g gfid.GFID) error
}
