// Package target is the contract between the replication engine (and
// verify, repair, restore) and the places a brick is replicated to: a
// directory mirror, a remote mirror, an erasure-coded fragment set, an
// object store.
//
// Invariants every kind keeps:
//   - inodes are named by gfid; a target refuses to remove, overwrite or
//     rename an entry whose gfid is not the one the call names (ErrExist
//     or ErrNotExist), so a conflict is seen and resolved by the engine,
//     never lost silently;
//   - nothing is ever written outside the target (a kind that keeps a
//     tree on disk resolves every path confined, internal/layout);
//   - an error says itself whether it concerns one entry or the whole
//     target (Down): the target decides, not errno guessing in the engine;
//   - every call honours its context: a cancelled context stops it.
//
// The core, Target, is what every kind implements. What only some kinds
// can do is an optional interface (HardLinker, IndexRepairer, Hasher,
// TreeRemover); each documents the fallback its callers use without it.
package target

import (
	"context"
	"io"
	"time"

	"golang.org/x/sys/unix"

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
func (a Attr) Type() uint32 { return a.Mode & unix.S_IFMT }

// AttrOf is the Attr of a stat result.
func AttrOf(st *unix.Stat_t) Attr {
	return Attr{Mode: st.Mode, UID: st.Uid, GID: st.Gid, Rdev: st.Rdev, Size: st.Size,
		Atime: st.Atim.Nano(), Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(), Ino: st.Ino, Nlink: uint32(st.Nlink)}
}

// DirEntry is one name of a directory listing.
type DirEntry struct {
	Name string
	GFID gfid.GFID // zero when the entry has none (made behind replfs's back)
	Mode uint32    // type bits only
	Attr Attr      // the entry's attributes, as listed
}

// FullEntry is a directory entry with everything a verify compares
// besides content: what Target.List returns.
type FullEntry struct {
	DirEntry
	Xattrs Xattrs // user-visible xattrs
	Link   string // symlink target

	// Hashed: the listing read the content of this regular file (List with
	// hashBelow above its size). Sum and N are its HighwayHash-256 and
	// length; HashErr is why it could not be read.
	Hashed  bool
	Sum     contenthash.Sum
	N       int64
	HashErr error
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

// Source is the content of a new or changed regular file, read from
// offset 0 up to Size. A source on this host may also offer its
// descriptor (FDSource), which a target on this host copies from with
// copy_file_range; any other target reads it with ReadAt.
type Source interface {
	io.ReaderAt
	Size() int64
	Name() string // for messages
}

// FDSource is a Source that is an open file of this host.
type FDSource interface {
	Source
	FD() int
}

// Limbo is the directory gfid entries are set aside under (Aside) while a
// batch finds out where they go; a later Rename by gfid takes them out.
var Limbo = gfid.GFID{15: 2}

// Target is where a worker replicates to: the core every kind implements.
type Target interface {
	Name() string // as configured (path or address)
	Kind() string // "mirror", ...
	// Open checks that the target is reachable and is (or can become) a
	// target of the brick brickID, and prepares it. Attach is Open for
	// readers (verify): it changes nothing, and the target must already be
	// a target of brickID. Check repeats the reachability test before each
	// batch.
	Open(ctx context.Context, brickID string) error
	Attach(ctx context.Context, brickID string) error
	Check(ctx context.Context) error
	Close() error

	// Lookup returns the gfid and attributes of parent/name; found is false
	// when the parent or the name does not exist.
	Lookup(ctx context.Context, parent gfid.GFID, name string) (g gfid.GFID, a Attr, found bool, err error)
	// Stat returns inode g's attributes (ErrNotExist when it has none).
	Stat(ctx context.Context, g gfid.GFID) (Attr, error)
	ReadDir(ctx context.Context, dir gfid.GFID) ([]DirEntry, error)
	Xattrs(ctx context.Context, g gfid.GFID) (Xattrs, error)
	// Where returns directory g's parent and name.
	Where(ctx context.Context, g gfid.GFID) (gfid.GFID, string, error)

	// Make creates parent/name as inode g: a directory, an empty regular
	// file, a symlink to link, a device, fifo or socket, with a's owner
	// and mode and the xattrs x. A taken name is ErrExist.
	Make(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID, a Attr, link string, x Xattrs) error
	// CreateFile creates parent/name as regular file g holding src's
	// content (src.Size() bytes; a source that ends early, a brick file
	// that shrank, ends the content there; a read error fails the call and
	// leaves nothing), with a's attributes; nothing is visible at
	// parent/name until it is complete. It returns the bytes written.
	CreateFile(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID, src Source, a Attr, x Xattrs) (int64, error)
	// WriteFile replaces the content of the existing regular file g under
	// every one of its names at once and sets a's attributes.
	WriteFile(ctx context.Context, g gfid.GFID, src Source, a Attr, x Xattrs) (int64, error)
	Unlink(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error
	Rmdir(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error
	// Rename moves the name oldParent/oldName, which must hold g, to the
	// free name newParent/newName.
	Rename(ctx context.Context, g, oldParent gfid.GFID, oldName string, newParent gfid.GFID, newName string) error
	// Aside moves parent/name (holding g) into Limbo, where a later Rename
	// by gfid finds it. EmptyLimbo removes what is still there.
	Aside(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error
	EmptyLimbo(ctx context.Context) (int, error)
	SetMeta(ctx context.Context, g gfid.GFID, a Attr, x Xattrs, what Meta) error

	// List returns directory dir's entries with their xattrs and symlink
	// targets: what a verify compares, in one call per directory (one
	// round trip for a remote target). Regular files smaller than
	// hashBelow (0: none) are hashed too where the data is
	// (FullEntry.Hashed). A directory whose index entry does not lead to
	// it is ErrIndexStale. LookupFull is List for one name, without
	// hashing; found is false when parent/name does not exist.
	List(ctx context.Context, dir gfid.GFID, hashBelow int64) ([]FullEntry, error)
	LookupFull(ctx context.Context, parent gfid.GFID, name string) (e FullEntry, found bool, err error)

	// Sync makes everything applied so far durable; SetStime then records
	// the journal time up to which the target is complete.
	Sync(ctx context.Context) error
	SetStime(ctx context.Context, t time.Time) error
}

// HardLinker is a target that keeps hard-link groups.
// Fallback without it: each name of a hard-linked file is made as a file
// of its own (CreateFile), and verify does not compare link groups.
type HardLinker interface {
	// Link adds the name parent/name to the existing non-directory g.
	Link(ctx context.Context, g, parent gfid.GFID, name string) error
	// Relink replaces parent/name, which holds a separate copy of g (not
	// the inode g's other names share), with a hard link to that inode.
	Relink(ctx context.Context, g, parent gfid.GFID, name string) error
	// Parents returns the directories holding non-directory g's names, as
	// far as the target knows (none when it does not hold g).
	Parents(ctx context.Context, g gfid.GFID) ([]gfid.GFID, error)
}

// IndexRepairer is a target with a gfid index that can lose entries (a
// crash between making an entry and indexing it, or damage).
// Fallback without it: the entry is removed and made again.
type IndexRepairer interface {
	// Adopt indexes parent/name, which holds g but is missing from the
	// target's index.
	Adopt(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error
	// Repoint makes directory g's index entry lead to parent/name, which
	// holds it (List found the entry leading elsewhere: ErrIndexStale).
	Repoint(ctx context.Context, g, parent gfid.GFID, name string) error
}

// Hasher hashes content where the data is, so that comparing costs no
// transfer. Fallback without it: verify reports content as not compared.
type Hasher interface {
	// Hash returns the HighwayHash-256 of regular file g's content and its
	// length. size is the length the caller expects, or -1.
	Hash(ctx context.Context, g gfid.GFID, size int64) (contenthash.Sum, int64, error)
	// HashDir hashes the regular files reqs name in directory dir, filling
	// in each one's sum, length or error: one call (one round trip) per
	// directory.
	HashDir(ctx context.Context, dir gfid.GFID, reqs []HashReq) error
}

// HashReq is one file of a HashDir call.
type HashReq struct {
	Name string
	Size int64 // expected length, or -1
	Sum  contenthash.Sum
	N    int64 // bytes read
	Err  error
}

// TreeRemover removes an entry with its whole subtree in one call: what
// a directory made behind replfs's back (no gfid, so the engine cannot
// walk it by identity) needs. Fallback without it: such an entry is left
// and counted as a failure.
type TreeRemover interface {
	RemoveAll(ctx context.Context, parent gfid.GFID, name string, g gfid.GFID) error
}

// Identified is a target that keeps an identity of its own (a mirror's
// target.json id), which names its replication state on the brick, so that
// the state follows the target and not the spelling of its path.
// Fallback without it: the target's Name.
type Identified interface {
	ID() string
}
