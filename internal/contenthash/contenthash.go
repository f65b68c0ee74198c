// Package contenthash computes the content checksums replfs compares
// across a brick and its targets: HighwayHash-256 under one fixed key, so
// that a sum computed on one host can be compared with one computed on
// another.
package contenthash

import (
	"encoding/hex"
	"hash"
	"io"
	"os"

	"github.com/minio/highwayhash"
	"golang.org/x/sys/unix"
)

// Sum is a HighwayHash-256 digest.
type Sum [highwayhash.Size]byte

func (s Sum) String() string { return hex.EncodeToString(s[:]) }

// key is replfs's fixed HighwayHash key (docs/formats.md). Checksums are
// for detecting corruption and differences, not for authentication.
var key = []byte("replfs content checksum key v1\x00\x00")

// hasher is a read buffer and a digest, reused: a verify hashes
// thousands of files, and a fresh digest and buffer for each would be
// garbage to collect and memory to clear.
type hasher struct {
	buf []byte
	h   hash.Hash
	sum Sum // where h writes its sum (a local would escape through the interface)
}

// free holds idle hashers. Unlike a sync.Pool it is not emptied by each
// garbage collection, which made every walker allocate and clear a new
// 1 MiB buffer after each one.
var free = make(chan *hasher, 16)

func getHasher() *hasher {
	select {
	case x := <-free:
		return x
	default:
	}
	h, err := highwayhash.New(key)
	if err != nil {
		panic(err) // the key has the right length
	}
	return &hasher{buf: make([]byte, 1<<20), h: h}
}

func putHasher(x *hasher) {
	select {
	case free <- x:
	default:
	}
}

// Reader hashes r to its end and returns the sum and the byte count.
func Reader(r io.Reader) (Sum, int64, error) {
	x := getHasher()
	defer putHasher(x)
	x.h.Reset()
	n, err := io.CopyBuffer(x.h, struct{ io.Reader }{r}, x.buf)
	if err != nil {
		return Sum{}, n, err
	}
	x.h.Sum(x.sum[:0])
	return x.sum, n, nil
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
	x := getHasher()
	defer putHasher(x)
	var n int64
	for {
		k, err := unix.Read(fd, x.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return Sum{}, n, err
		}
		if n == 0 && int64(k) == expect && k < len(x.buf) {
			// The whole file in one read (most files): hashed at once,
			// without the digest's copying into blocks.
			return highwayhash.Sum(x.buf[:k], key), int64(k), nil
		}
		if n == 0 {
			x.h.Reset()
		}
		if k == 0 {
			break
		}
		x.h.Write(x.buf[:k])
		n += int64(k)
		if n == expect && k < len(x.buf) {
			break
		}
	}
	x.h.Sum(x.sum[:0])
	return x.sum, n, nil
}
