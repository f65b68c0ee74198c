package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// syscallFloor times the system calls alone that a verify --checksum of
// brick against mirror cannot do without, on every CPU: per directory on
// each side open, getdents and close; per regular file on each side lstat,
// open, the gfid xattr, the xattr list, read to the end and close. Nothing
// is hashed or compared, and the calls are raw (no Go scheduler hand-off),
// so no verify can be faster than this on this machine; rsync -a makes no
// xattr calls. The directory list is read before the clock starts.
func syscallFloor(brick, mirror string) time.Duration {
	var dirs []string
	check(filepath.WalkDir(brick, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".replfs" {
				return filepath.SkipDir
			}
			dirs = append(dirs, strings.TrimPrefix(p, brick))
		}
		return nil
	}))
	var next atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(dirs) {
					return
				}
				floorDir(brick+dirs[i], buf)
				floorDir(mirror+dirs[i], buf)
			}
		}()
	}
	wg.Wait()
	return time.Since(t0)
}

func floorDir(dp string, buf []byte) {
	f, err := os.Open(dp)
	check(err)
	defer f.Close()
	names, err := f.ReadDir(-1) // getdents
	check(err)
	dfd := int(f.Fd())
	gx := []byte("trusted.replfs.gfid\x00")
	var st unix.Stat_t
	var x [4096]byte
	var name [256]byte
	for _, e := range names {
		if !e.Type().IsRegular() || len(e.Name()) >= len(name) {
			continue
		}
		copy(name[:], e.Name())
		name[len(e.Name())] = 0
		np := uintptr(unsafe.Pointer(&name[0]))
		syscall.RawSyscall6(unix.SYS_NEWFSTATAT, uintptr(dfd), np, uintptr(unsafe.Pointer(&st)), unix.AT_SYMLINK_NOFOLLOW, 0, 0)
		fd, _, e := syscall.RawSyscall6(unix.SYS_OPENAT, uintptr(dfd), np, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0, 0, 0)
		if e != 0 {
			continue
		}
		syscall.RawSyscall6(unix.SYS_FGETXATTR, fd, uintptr(unsafe.Pointer(&gx[0])), uintptr(unsafe.Pointer(&x[0])), uintptr(len(x)), 0, 0)
		syscall.RawSyscall(unix.SYS_FLISTXATTR, fd, uintptr(unsafe.Pointer(&x[0])), uintptr(len(x)))
		for n := int64(0); n < st.Size; {
			k, _, e := syscall.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
			if e != 0 || k == 0 {
				break
			}
			n += int64(k)
		}
		syscall.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	}
}
