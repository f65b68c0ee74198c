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

func TestNewRunsShareIndexDirectory(t *testing.T) {
	const runs = 2000
	dirs := map[[2]byte]int{}
	seen := map[GFID]bool{}
	var prev [2]byte
	changes := 0
	for i := range runs * RunLength {
		g := New()
		if seen[g] {
			t.Fatalf("gfid %s made twice", g)
		}
		seen[g] = true
		if g[6]>>4 != 4 || g[8]>>6 != 2 {
			t.Fatalf("gfid %s: not a version 4, RFC 4122 variant UUID", g)
		}
		d := [2]byte{g[0], g[1]}
		if i > 0 && d != prev {
			changes++
		}
		prev = d
		dirs[d]++
	}
	// Runs of RunLength share a directory, so the directory changes at
	// most once per run boundary (a call of New elsewhere in the package's
	// tests may shift the boundaries, not add to them).
	if changes > runs {
		t.Errorf("index directory changed %d times in %d gfids; want at most %d", changes, runs*RunLength, runs)
	}
	// Over many runs the directories are spread: 2000 runs over 65,536
	// directories land in nearly 2000 distinct ones.
	if len(dirs) < runs*9/10 {
		t.Errorf("%d runs used only %d distinct index directories", runs, len(dirs))
	}
	for d, n := range dirs {
		if n > 3*RunLength {
			t.Errorf("directory %x got %d of %d gfids", d, n, runs*RunLength)
		}
	}
}
