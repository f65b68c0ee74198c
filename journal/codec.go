package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrCorrupt reports a record or segment that cannot be trusted. Errors
// from a segment wrap it with the segment's file name and byte offset.
var ErrCorrupt = errors.New("journal corrupt")

// Presence bits of the payload: a field is encoded only when it is not its
// zero value, so the codec keeps whatever fields a caller set, whatever the
// op, and a new field needs only a new bit (and a format version bump).
const (
	hasGFID uint64 = 1 << iota
	hasParent
	hasName
	hasParent2
	hasName2
	hasMode
	hasUID
	hasGID
	hasRdev
	hasFlags
	hasMask
	hasTarget
	hasXattr

	hasAll = hasXattr<<1 - 1
)

// Encode appends the payload form of r to dst and returns the extended
// slice. The payload is: op (1 byte), presence mask (uvarint), seq
// (uvarint), time (varint), then each present field in the order of the
// presence bits: gfids as 16 raw bytes, integers as uvarints, strings as a
// uvarint length and the bytes. It does not allocate when dst has room.
func Encode(dst []byte, r *Record) []byte {
	m := presence(r)
	dst = append(dst, byte(r.Op))
	dst = binary.AppendUvarint(dst, m)
	dst = binary.AppendUvarint(dst, r.Seq)
	dst = binary.AppendVarint(dst, r.Time)
	if m&hasGFID != 0 {
		dst = append(dst, r.GFID[:]...)
	}
	if m&hasParent != 0 {
		dst = append(dst, r.Parent[:]...)
	}
	if m&hasName != 0 {
		dst = appendString(dst, r.Name)
	}
	if m&hasParent2 != 0 {
		dst = append(dst, r.Parent2[:]...)
	}
	if m&hasName2 != 0 {
		dst = appendString(dst, r.Name2)
	}
	for _, f := range [...]struct {
		bit uint64
		v   uint64
	}{
		{hasMode, uint64(r.Mode)}, {hasUID, uint64(r.UID)}, {hasGID, uint64(r.GID)},
		{hasRdev, r.Rdev}, {hasFlags, uint64(r.Flags)}, {hasMask, uint64(r.Mask)},
	} {
		if m&f.bit != 0 {
			dst = binary.AppendUvarint(dst, f.v)
		}
	}
	if m&hasTarget != 0 {
		dst = appendString(dst, r.Target)
	}
	if m&hasXattr != 0 {
		dst = appendString(dst, r.Xattr)
	}
	return dst
}

func presence(r *Record) uint64 {
	var m uint64
	set := func(bit uint64, present bool) {
		if present {
			m |= bit
		}
	}
	set(hasGFID, !r.GFID.IsZero())
	set(hasParent, !r.Parent.IsZero())
	set(hasName, r.Name != "")
	set(hasParent2, !r.Parent2.IsZero())
	set(hasName2, r.Name2 != "")
	set(hasMode, r.Mode != 0)
	set(hasUID, r.UID != 0)
	set(hasGID, r.GID != 0)
	set(hasRdev, r.Rdev != 0)
	set(hasFlags, r.Flags != 0)
	set(hasMask, r.Mask != 0)
	set(hasTarget, r.Target != "")
	set(hasXattr, r.Xattr != "")
	return m
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Decode parses a payload written by Encode into r, replacing all of r
// (with the zero Record on failure). It never panics; any malformed input
// yields an error wrapping ErrCorrupt.
func Decode(p []byte, r *Record) error {
	*r = Record{}
	d := decoder{p: p}
	op := Op(d.byte())
	m := d.uvarint()
	seq, tm := d.uvarint(), d.varint()
	if d.err != nil {
		return d.err
	}
	if !op.Valid() {
		return fmt.Errorf("%w: unknown op %d", ErrCorrupt, op)
	}
	if m&^hasAll != 0 {
		return fmt.Errorf("%w: unknown fields %#x", ErrCorrupt, m&^hasAll)
	}
	out := Record{Seq: seq, Time: tm, Op: op}
	d.gfid(m&hasGFID, out.GFID[:])
	d.gfid(m&hasParent, out.Parent[:])
	out.Name = d.string(m & hasName)
	d.gfid(m&hasParent2, out.Parent2[:])
	out.Name2 = d.string(m & hasName2)
	out.Mode = d.uint32(m & hasMode)
	out.UID = d.uint32(m & hasUID)
	out.GID = d.uint32(m & hasGID)
	if m&hasRdev != 0 {
		out.Rdev = d.uvarint()
	}
	out.Flags = d.uint32(m & hasFlags)
	out.Mask = d.uint32(m & hasMask)
	out.Target = d.string(m & hasTarget)
	out.Xattr = d.string(m & hasXattr)
	if d.err == nil && len(d.p) != 0 {
		d.fail("%d trailing bytes", len(d.p))
	}
	if d.err != nil {
		return d.err
	}
	*r = out
	return nil
}

// decoder reads a payload front to back; the first error sticks and makes
// every later read return zero.
type decoder struct {
	p   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: decode: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.p) == 0 {
		d.fail("short payload")
		return 0
	}
	b := d.p[0]
	d.p = d.p[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.p)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) uint32(present uint64) uint32 {
	if present == 0 {
		return 0
	}
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.fail("value %d overflows uint32", v)
		return 0
	}
	return uint32(v)
}

func (d *decoder) gfid(present uint64, dst []byte) {
	if present == 0 || d.err != nil {
		return
	}
	if len(d.p) < len(dst) {
		d.fail("short gfid")
		return
	}
	copy(dst, d.p)
	d.p = d.p[len(dst):]
}

func (d *decoder) string(present uint64) string {
	if present == 0 {
		return ""
	}
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.p)) {
		d.fail("string length %d exceeds payload", n)
		return ""
	}
	s := string(d.p[:n])
	d.p = d.p[n:]
	return s
}
