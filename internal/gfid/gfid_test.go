package gfid

import (
	"strings"
	"testing"
)

func TestStringParseRoundTrip(t *testing.T) {
	for i := 0; i < 100; i++ {
		g := New()
		s := g.String()
		if len(s) != 36 || s[14] != '4' {
			t.Fatalf("not a v4 uuid: %s", s)
		}
		back, err := Parse(s)
		if err != nil || back != g {
			t.Fatalf("Parse(%s) = %v, %v", s, back, err)
		}
	}
	if Root.String() != "00000000-0000-0000-0000-000000000001" {
		t.Fatalf("root gfid %s", Root)
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	for _, s := range []string{"", "xyz", strings.Repeat("0", 36), "00000000-0000-0000-0000-00000000000g", "00000000-0000-0000-0000-0000000000011"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
	if _, err := FromBytes([]byte{1, 2}); err == nil {
		t.Error("FromBytes accepted 2 bytes")
	}
}

func TestIndexLayout(t *testing.T) {
	g, _ := Parse("6f1c2a3b-0000-4000-8000-000000000000")
	if got := g.IndexPath(); got != ".replfs/gfid/6f/1c/6f1c2a3b-0000-4000-8000-000000000000" {
		t.Errorf("IndexPath = %s", got)
	}
	if got := DirPointer(g, "name"); got != "../../6f/1c/6f1c2a3b-0000-4000-8000-000000000000/name" {
		t.Errorf("DirPointer = %s", got)
	}
}
