// Package contenthash computes the content checksums replfs compares
// across a brick and its targets: HighwayHash-256 under one fixed key, so
// that a sum computed on one host can be compared with one computed on
// another.
package contenthash

import (
	"encoding/hex"
	"io"
	"os"
	"sync"

	"github.com/minio/highwayhash"
	"golang.org/x/sys/unix"
)

// Sum is a HighwayHash-256 digest.
type Sum [highwayhash.Size]byte

func (s Sum) String() string { return hex.EncodeToString(s[:]) }

// key is replfs's fixed HighwayHash key (docs/formats.md). Checksums are
// for detecting corruption and differences, not for authentication.
var key = []byte("replfs content checksum key v1\x00\x00")

var bufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// Reader hashes r to its end and returns the sum and the byte count.
func Reader(r io.Reader) (Sum, int64, error) {
	h, err := highwayhash.New(key)
	if err != nil {
		panic(err) // the key has the right length
	}
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	n, err := io.CopyBuffer(h, struct{ io.Reader }{r}, *bp)
	var s Sum
	if err != nil {
		return s, n, err
	}
	h.Sum(s[:0])
	return s, n, nil
}

// File hashes f's content from offset 0.
func File(f *os.File) (Sum, int64, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Sum{}, 0, err
	}
	return Reader(f)
}

// Bytes hashes b.
func Bytes(b []byte) Sum { return highwayhash.Sum(b, key) }

// FD hashes what is left to read from file descriptor fd with plain
// read(2) calls (no os.File around it: a verify hashes thousands of small
// files, and each wrapper costs system calls of its own). expect is the
// size the caller saw, or -1: a short read that ends exactly there is
// taken as the end of the file, which saves the read that would return 0.
func FD(fd int, expect int64) (Sum, int64, error) {
	h, err := highwayhash.New(key)
	if err != nil {
		panic(err)
	}
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	var n int64
	var s Sum
	for {
		k, err := unix.Read(fd, *bp)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return s, n, err
		}
		if k == 0 {
			break
		}
		h.Write((*bp)[:k])
		n += int64(k)
		if n == expect && k < len(*bp) {
			break
		}
	}
	h.Sum(s[:0])
	return s, n, nil
}
