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

// TestFDSmallFilesMatchStreaming: FD hashes a file read in one call with
// the one-shot sum; it must equal the streaming digest for every size
// around HighwayHash's 32-byte blocks and the 1 MiB read buffer, and for
// sizes the caller got wrong.
func TestFDSmallFilesMatchStreaming(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 31, 32, 33, 64, 1000, 1<<20 - 1, 1 << 20, 1<<20 + 1} {
		data := bytes.Repeat([]byte{0x5a, 0x00, 0xff, 0x13, 0x77}, size/5+1)[:size]
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		want, wn, err := Reader(bytes.NewReader(data))
		if err != nil || wn != int64(size) {
			t.Fatalf("Reader: %v, %d bytes", err, wn)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, expect := range []int64{-1, int64(size), int64(size) - 1, int64(size) + 1} {
			f.Seek(0, 0)
			s, n, err := FD(int(f.Fd()), expect)
			if err != nil || n != int64(size) || s != want {
				t.Errorf("size %d, expect %d: FD %s, %d bytes, %v; streaming %s", size, expect, s, n, err, want)
			}
		}
		f.Close()
	}
}
