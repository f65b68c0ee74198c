package contenthash

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestFileMatchesBytesAndSeesOneFlippedBit(t *testing.T) {
	data := bytes.Repeat([]byte("replfs"), 400_000) // > one buffer
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Seek(123, 0) // File hashes from offset 0 whatever the position
	s, n, err := File(f)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("File: %v, %d bytes, want %d", err, n, len(data))
	}
	if s != Bytes(data) {
		t.Fatalf("File %s != Bytes %s", s, Bytes(data))
	}
	for _, expect := range []int64{-1, n, n - 1, n + 1} {
		f.Seek(0, 0)
		if s2, n2, err := FD(int(f.Fd()), expect); err != nil || n2 != n || s2 != s {
			t.Fatalf("FD(expect %d): %s, %d, %v; want %s, %d", expect, s2, n2, err, s, n)
		}
	}
	data[len(data)/2] ^= 1
	if Bytes(data) == s {
		t.Fatal("a flipped bit did not change the sum")
	}
	if len(key) != 32 {
		t.Fatalf("key is %d bytes, HighwayHash needs 32", len(key))
	}
}
