package target

import (
	"io"

	"golang.org/x/sys/unix"
)

// FileSource is a Source over an open file of this host: pread for any
// target, the descriptor itself for one that can copy kernel-side. It
// does not own the descriptor.
type FileSource struct {
	Fd   int
	Path string // for messages
	Len  int64
}

func (s FileSource) Size() int64  { return s.Len }
func (s FileSource) Name() string { return s.Path }
func (s FileSource) FD() int      { return s.Fd }

func (s FileSource) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		k, err := unix.Pread(s.Fd, p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if k == 0 {
			return n, io.EOF
		}
		n += k
	}
	return n, nil
}
