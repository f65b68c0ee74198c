package journal

import (
	"github.com/replfs/replfs/internal/gfid"
)

// Kind is the class of a record, as in GlusterFS changelogs.
type Kind byte

const (
	KindEntry Kind = 'E' // namespace change
	KindData  Kind = 'D' // content change
	KindMeta  Kind = 'M' // attribute or xattr change
)

// Op is the operation a record describes.
type Op uint8

const (
	OpInvalid Op = iota
	OpCreate
	OpMkdir
	OpMknod
	OpSymlink
	OpLink
	OpUnlink
	OpRmdir
	OpRename
	OpData
	OpSetattr
	OpSetxattr
	OpRemovexattr
	opMax
)

var opNames = [...]string{
	OpInvalid:     "INVALID",
	OpCreate:      "CREATE",
	OpMkdir:       "MKDIR",
	OpMknod:       "MKNOD",
	OpSymlink:     "SYMLINK",
	OpLink:        "LINK",
	OpUnlink:      "UNLINK",
	OpRmdir:       "RMDIR",
	OpRename:      "RENAME",
	OpData:        "DATA",
	OpSetattr:     "SETATTR",
	OpSetxattr:    "SETXATTR",
	OpRemovexattr: "REMOVEXATTR",
}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return "INVALID"
}

// Valid reports whether o is a known operation.
func (o Op) Valid() bool { return o > OpInvalid && o < opMax }

// Kind returns the record class of o.
func (o Op) Kind() Kind {
	switch o {
	case OpData:
		return KindData
	case OpSetattr, OpSetxattr, OpRemovexattr:
		return KindMeta
	default:
		return KindEntry
	}
}

// Setattr field mask bits carried in Record.Mask for OpSetattr.
const (
	AttrMode  uint32 = 1 << iota // mode changed
	AttrOwner                    // uid and/or gid changed
	AttrTimes                    // atime/mtime changed
	AttrSize                     // truncate (also recorded as D)
)

// Record is one journal entry. Which fields are set depends on Op:
//
//	CREATE, MKDIR, MKNOD:  GFID, Parent/Name, Mode, UID, GID (Rdev for MKNOD)
//	SYMLINK:               GFID, Parent/Name, UID, GID, Target
//	LINK:                  GFID (the existing inode), Parent/Name (the new name)
//	UNLINK, RMDIR:         GFID, Parent/Name
//	RENAME:                GFID, Parent/Name (old), Parent2/Name2 (new), Flags
//	DATA:                  GFID
//	SETATTR:               GFID, Mask
//	SETXATTR, REMOVEXATTR: GFID, Xattr
type Record struct {
	Seq  uint64 // assigned by the journal, strictly increasing
	Time int64  // unix nanoseconds, assigned by the journal
	Op   Op

	GFID    gfid.GFID
	Parent  gfid.GFID
	Name    string
	Parent2 gfid.GFID
	Name2   string

	Mode  uint32
	UID   uint32
	GID   uint32
	Rdev  uint64
	Flags uint32 // RENAME flags (RENAME_NOREPLACE, RENAME_EXCHANGE)
	Mask  uint32 // SETATTR: which attributes changed (Attr* bits)

	Target string // SYMLINK target
	Xattr  string // SETXATTR/REMOVEXATTR name
}

// Kind returns the record class.
func (r *Record) Kind() Kind { return r.Op.Kind() }
