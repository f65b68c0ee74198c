package journal

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/replfs/replfs/internal/gfid"
)

func TestFormat(t *testing.T) {
	const ts = "1 2026-11-23T10:00:00.123456789Z "
	g := "6f1c2a3b-4d5e-4f60-8172-93a4b5c6d7e8"
	p := "00000000-0000-0000-0000-000000000001"
	rec := func(r Record) Record { r.Seq, r.Time, r.GFID = 1, testEpoch.UnixNano(), gA; return r }
	tests := []struct {
		rec  Record
		want string
	}{
		{rec(Record{Op: OpCreate, Parent: gfid.Root, Name: "f", Mode: 0o100644}), "E " + g + " CREATE " + p + "/f mode=0100644 uid=0 gid=0"},
		{rec(Record{Op: OpMkdir, Parent: gfid.Root, Name: "d", Mode: 0o40755, UID: 1000, GID: 100}), "E " + g + " MKDIR " + p + "/d mode=040755 uid=1000 gid=100"},
		{rec(Record{Op: OpMknod, Parent: gfid.Root, Name: "n", Mode: 0o20600, Rdev: 259}), "E " + g + " MKNOD " + p + "/n mode=020600 uid=0 gid=0 rdev=259"},
		{rec(Record{Op: OpSymlink, Parent: gfid.Root, Name: "l", Target: "../x y", UID: 5, GID: 6}), "E " + g + " SYMLINK " + p + `/l -> "../x y" uid=5 gid=6`},
		{rec(Record{Op: OpLink, Parent: gfid.Root, Name: "h"}), "E " + g + " LINK " + p + "/h"},
		{rec(Record{Op: OpUnlink, Parent: gfid.Root, Name: "tab\there"}), "E " + g + " UNLINK " + p + `/"tab\there"`},
		{rec(Record{Op: OpRmdir, Parent: gfid.Root, Name: "\xff\xfe"}), "E " + g + " RMDIR " + p + `/"\xff\xfe"`},
		{rec(Record{Op: OpRmdir, Parent: gfid.Root, Name: "ünïcödé"}), "E " + g + " RMDIR " + p + "/ünïcödé"},
		{rec(Record{Op: OpRename, Parent: gfid.Root, Name: "a", Parent2: gA, Name2: "b"}), "E " + g + " RENAME " + p + "/a " + g + "/b"},
		{rec(Record{Op: OpRename, Parent: gfid.Root, Name: "a", Parent2: gA, Name2: "b", Flags: 2}), "E " + g + " RENAME " + p + "/a " + g + "/b flags=2"},
		{rec(Record{Op: OpData}), "D " + g + " DATA"},
		{rec(Record{Op: OpSetattr, Mask: AttrMode | AttrOwner | AttrTimes | AttrSize}), "M " + g + " SETATTR mode,owner,times,size"},
		{rec(Record{Op: OpSetattr, Mask: AttrTimes | 1<<7}), "M " + g + " SETATTR times,0x80"},
		{rec(Record{Op: OpSetxattr, Xattr: "user.x"}), "M " + g + " SETXATTR user.x"},
		{rec(Record{Op: OpRemovexattr, Xattr: `"quoted`}), "M " + g + ` REMOVEXATTR "\"quoted"`},
	}
	for _, tt := range tests {
		if got := Format(&tt.rec); got != ts+tt.want {
			t.Errorf("Format(%v)\n got %s\nwant %s", tt.rec.Op, got, ts+tt.want)
		}
	}
}

func TestDump(t *testing.T) {
	dir := t.TempDir()
	clock := newClock(testEpoch)
	j := openTest(t, dir, Options{Now: clock.Now})
	appendOp(t, j, Record{Op: OpCreate, GFID: gA, Parent: gfid.Root, Name: "a b", Mode: 0o100644})
	clock.Advance(time.Second)
	appendOp(t, j, Record{Op: OpRename, GFID: gA, Parent: gfid.Root, Name: "a b", Parent2: gB, Name2: "c"})
	rollover(t, j)
	appendOp(t, j, Record{Op: OpSetattr, GFID: gA, Mask: AttrMode | AttrTimes})
	appendOp(t, j, Record{Op: OpData, GFID: gA}) // in the open segment: dumped too

	const (
		g  = "6f1c2a3b-4d5e-4f60-8172-93a4b5c6d7e8"
		g2 = "ff000000-0000-0000-0000-0000000000fe"
		p  = "00000000-0000-0000-0000-000000000001"
	)
	text := []string{
		`1 2026-11-23T10:00:00.123456789Z E ` + g + ` CREATE ` + p + `/"a b" mode=0100644 uid=0 gid=0`,
		`2 2026-11-23T10:00:01.123456789Z E ` + g + ` RENAME ` + p + `/"a b" ` + g2 + `/c`,
		`3 2026-11-23T10:00:01.123456789Z M ` + g + ` SETATTR mode,times`,
		`4 2026-11-23T10:00:01.123456789Z D ` + g + ` DATA`,
	}
	js := []string{
		`{"seq":1,"time":"2026-11-23T10:00:00.123456789Z","kind":"E","op":"CREATE","gfid":"` + g + `","parent":"` + p + `","name":"a b","mode":33188}`,
		`{"seq":2,"time":"2026-11-23T10:00:01.123456789Z","kind":"E","op":"RENAME","gfid":"` + g + `","parent":"` + p + `","name":"a b","parent2":"` + g2 + `","name2":"c"}`,
		`{"seq":3,"time":"2026-11-23T10:00:01.123456789Z","kind":"M","op":"SETATTR","gfid":"` + g + `","mask":5}`,
		`{"seq":4,"time":"2026-11-23T10:00:01.123456789Z","kind":"D","op":"DATA","gfid":"` + g + `"}`,
	}
	tests := []struct {
		name   string
		from   uint64
		asJSON bool
		want   []string
	}{
		{"text", 0, false, text},
		{"json", 0, true, js},
		{"text from 3", 3, false, text[2:]},
		{"json from 2", 2, true, js[1:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Dump(&buf, dir, tt.from, tt.asJSON); err != nil {
				t.Fatal(err)
			}
			want := strings.Join(tt.want, "\n") + "\n"
			if buf.String() != want {
				t.Fatalf("dump\n%s\nwant\n%s", buf.String(), want)
			}
		})
	}
}
