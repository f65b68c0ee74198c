package journal

import (
	"errors"
	"strings"
	"testing"

	"github.com/replfs/replfs/internal/gfid"
)

var (
	gA = mustGFID("6f1c2a3b-4d5e-4f60-8172-93a4b5c6d7e8")
	gB = gfid.GFID{0: 0xff, 15: 0xfe}
)

// codecCases has a record of every op with every field it uses, plus the
// awkward names a brick can hold.
func codecCases() []struct {
	name string
	rec  Record
} {
	long := strings.Repeat("n", 255)
	binary := "\xff\xfe\x00bin\x80ary\n"
	return []struct {
		name string
		rec  Record
	}{
		{"create", Record{Seq: 1, Time: 1, Op: OpCreate, GFID: gA, Parent: gfid.Root, Name: "file.txt", Mode: 0o100644, UID: 1000, GID: 1000}},
		{"create long name", Record{Seq: 2, Time: 2, Op: OpCreate, GFID: gA, Parent: gB, Name: long, Mode: 0o100600}},
		{"create binary name", Record{Seq: 3, Time: 3, Op: OpCreate, GFID: gA, Parent: gB, Name: binary, Mode: 0o100600, UID: 1<<32 - 1, GID: 1<<32 - 2}},
		{"create empty name", Record{Seq: 4, Time: -4, Op: OpCreate, GFID: gA}},
		{"mkdir", Record{Seq: 5, Time: 5, Op: OpMkdir, GFID: gA, Parent: gfid.Root, Name: "dir", Mode: 0o40755, UID: 1, GID: 2}},
		{"mknod", Record{Seq: 6, Time: 6, Op: OpMknod, GFID: gA, Parent: gB, Name: "null", Mode: 0o20666, Rdev: 1<<40 | 259}},
		{"symlink", Record{Seq: 7, Time: 7, Op: OpSymlink, GFID: gA, Parent: gB, Name: "ln", Mode: 0o120777, UID: 3, GID: 4, Target: "../some where/" + long}},
		{"symlink binary target", Record{Seq: 8, Time: 8, Op: OpSymlink, GFID: gA, Parent: gB, Name: binary, Target: binary}},
		{"link", Record{Seq: 9, Time: 9, Op: OpLink, GFID: gA, Parent: gB, Name: "hard"}},
		{"unlink", Record{Seq: 10, Time: 10, Op: OpUnlink, GFID: gA, Parent: gB, Name: "gone"}},
		{"rmdir", Record{Seq: 11, Time: 11, Op: OpRmdir, GFID: gA, Parent: gB, Name: "d"}},
		{"rename", Record{Seq: 12, Time: 12, Op: OpRename, GFID: gA, Parent: gB, Name: "old", Parent2: gfid.Root, Name2: long, Flags: 2}},
		{"rename to empty names", Record{Seq: 13, Time: 13, Op: OpRename, GFID: gA, Parent: gB, Parent2: gB}},
		{"data", Record{Seq: 14, Time: 1<<62 + 5, Op: OpData, GFID: gA}},
		{"setattr", Record{Seq: 15, Time: 15, Op: OpSetattr, GFID: gA, Mask: AttrMode | AttrOwner | AttrTimes | AttrSize}},
		{"setxattr", Record{Seq: 16, Time: 16, Op: OpSetxattr, GFID: gA, Xattr: "user.comment"}},
		{"setxattr binary", Record{Seq: 17, Time: 17, Op: OpSetxattr, GFID: gA, Xattr: binary}},
		{"removexattr", Record{Seq: 1<<64 - 1, Time: -1 << 63, Op: OpRemovexattr, GFID: gA, Xattr: "security.selinux"}},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, tt := range codecCases() {
		t.Run(tt.name, func(t *testing.T) {
			p := Encode([]byte("prefix"), &tt.rec)
			if string(p[:6]) != "prefix" {
				t.Fatal("Encode did not append to dst")
			}
			var got Record
			if err := Decode(p[6:], &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got != tt.rec {
				t.Fatalf("round trip\n got %+v\nwant %+v", got, tt.rec)
			}
		})
	}
}

func TestDecodeRejectsDamage(t *testing.T) {
	for _, tt := range codecCases() {
		p := Encode(nil, &tt.rec)
		// Every field is length-prefixed or fixed, so every strict prefix
		// is short somewhere.
		for n := 0; n < len(p); n++ {
			var r Record
			r.Name = "stale"
			if err := Decode(p[:n], &r); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: prefix %d/%d: err %v", tt.name, n, len(p), err)
			}
			if r != (Record{}) {
				t.Fatalf("%s: failed decode left %+v", tt.name, r)
			}
		}
		if err := Decode(append(p, 0), new(Record)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: trailing byte accepted: %v", tt.name, err)
		}
	}
	bad := []struct {
		name string
		p    []byte
	}{
		{"unknown op", []byte{byte(opMax), 0, 1, 2}},
		{"invalid op", []byte{byte(OpInvalid), 0, 1, 2}},
		{"unknown field", []byte{byte(OpData), 0x80, 0x40, 1, 2}},
		{"uint32 overflow", []byte{byte(OpSetattr), 0x80, byte(hasMask >> 7), 1, 2, 0xff, 0xff, 0xff, 0xff, 0x10}},
		{"string past end", []byte{byte(OpUnlink), byte(hasName), 1, 2, 5, 'a'}},
		{"varint overflow", []byte{byte(OpData), 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	}
	for _, tt := range bad {
		if err := Decode(tt.p, new(Record)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v", tt.name, err)
		}
	}
}

func TestEncodeDoesNotAllocateWithRoom(t *testing.T) {
	r := codecCases()[0].rec
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = Encode(buf[:0], &r) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
