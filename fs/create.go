package fs

import (
	"context"
	"os"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// daemonRoot tells whether the daemon gives new inodes their caller's
// owner, as go-fuse's loopback does when it runs as root (loopback asks
// getuid(2) on every create to know).
var daemonRoot = os.Geteuid() == 0

// createFile is go-fuse loopback's Create with fewer syscalls per new
// file, the commonest entry op of a workload: the file is opened with
// open(2), not os.OpenFile (which registers it with the poller, a failing
// epoll_ctl for a regular file); it is given its caller's owner with
// fchown(2) on the descriptor, and only when it does not have it yet
// (loopback's lchown walks the path every time). Its inode identity is
// loopback's (idFromStat), so a later LOOKUP finds the same inode. It
// returns the new inode, its file handle and descriptor.
func (n *node) createFile(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, int, syscall.Errno) {
	p := n.childPath(name)
	flags &^= syscall.O_APPEND
	fd, err := unix.Open(p, int(flags)|unix.O_CREAT|unix.O_CLOEXEC, mode)
	if err != nil {
		return nil, nil, -1, gofs.ToErrno(err)
	}
	var x unix.Statx_t
	if err := statxFd(fd, &x); err != nil {
		unix.Close(fd)
		return nil, nil, -1, gofs.ToErrno(err)
	}
	if daemonRoot {
		if c, ok := fuse.FromContext(ctx); ok && (c.Uid != x.Uid || c.Gid != x.Gid) {
			// As loopback, a failed chown leaves the daemon's owner.
			if unix.Fchown(fd, int(c.Uid), int(c.Gid)) == nil {
				// chown may clear set-id bits and changes ctime.
				if err := statxFd(fd, &x); err != nil {
					unix.Close(fd)
					return nil, nil, -1, gofs.ToErrno(err)
				}
			}
		}
	}
	var st syscall.Stat_t
	statFromStatx(&x, &st)
	out.FromStat(&st)
	ch := n.NewInode(ctx, &gofs.LoopbackNode{RootData: n.RootData}, stableAttr(n.RootData.Dev, &st, &x))
	return ch, gofs.NewLoopbackFile(fd), fd, 0
}

func statxFd(fd int, x *unix.Statx_t) error {
	return unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS|unix.STATX_BTIME, x)
}

// stableAttr is go-fuse loopback's idFromStat and genFromBtime: the
// backing inode number with the device mixed in, and its birth time as
// the generation.
func stableAttr(rootDev uint64, st *syscall.Stat_t, x *unix.Statx_t) gofs.StableAttr {
	gen := uint64(1)
	if x.Mask&unix.STATX_BTIME != 0 && (x.Btime.Sec != 0 || x.Btime.Nsec != 0) {
		gen = uint64(x.Btime.Sec)*1e9 + uint64(x.Btime.Nsec)
	}
	swapped := (st.Dev << 32) | (st.Dev >> 32)
	swappedRootDev := (rootDev << 32) | (rootDev >> 32)
	return gofs.StableAttr{Mode: st.Mode, Gen: gen, Ino: (swapped ^ swappedRootDev) ^ st.Ino}
}

func statFromStatx(x *unix.Statx_t, st *syscall.Stat_t) {
	st.Dev = unix.Mkdev(x.Dev_major, x.Dev_minor)
	st.Ino = x.Ino
	st.Nlink = uint64(x.Nlink)
	st.Mode = uint32(x.Mode)
	st.Uid = x.Uid
	st.Gid = x.Gid
	st.Rdev = unix.Mkdev(x.Rdev_major, x.Rdev_minor)
	st.Size = int64(x.Size)
	st.Blksize = int64(x.Blksize)
	st.Blocks = int64(x.Blocks)
	st.Atim = syscall.Timespec{Sec: x.Atime.Sec, Nsec: int64(x.Atime.Nsec)}
	st.Mtim = syscall.Timespec{Sec: x.Mtime.Sec, Nsec: int64(x.Mtime.Nsec)}
	st.Ctim = syscall.Timespec{Sec: x.Ctime.Sec, Nsec: int64(x.Ctime.Nsec)}
}
