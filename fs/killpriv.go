package fs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/journal"
)

// replfs negotiates FUSE_HANDLE_KILLPRIV_V2: the kernel then stops asking
// for security.capability (and for fresh attributes) before every write,
// two round trips per written file, and the file system must drop
// privileges itself where the kernel would:
//   - file capabilities go on any write: replfs removes them when a file
//     is opened for writing (passthrough writes never reach the daemon);
//   - set-user-ID, and set-group-ID with group execute, go when an
//     unprivileged process writes or truncates: replfs clears them when such
//     a process opens the file for writing, or truncates it.
// Dropping at open rather than at the first write errs on the safe side.

// suidgidKill returns mode without the bits an unprivileged write clears,
// and whether any were set.
func suidgidKill(mode uint32) (uint32, bool) {
	kill := uint32(syscall.S_ISUID)
	if mode&syscall.S_IXGRP != 0 {
		kill |= syscall.S_ISGID
	}
	return mode &^ kill, mode&kill != 0
}

func privileged(ctx context.Context) bool {
	uid, _ := caller(ctx)
	return uid == 0
}

// dropPrivs clears what a write by the caller would clear on the node's
// brick inode, journaling each change first. Call inside Enter/Exit. The
// common case (root writing a file known to have no capabilities) costs
// no system call.
func (n *node) dropPrivs(ctx context.Context, g [16]byte) syscall.Errno {
	if n.noCaps.Load() && privileged(ctx) {
		return 0
	}
	r := n.fs
	p := n.path()
	if !n.noCaps.Load() {
		sz, err := unix.Lgetxattr(p, capsXattr, nil)
		switch {
		case err == unix.ENODATA || err == unix.ENOTSUP:
			n.noCaps.Store(true)
		case err == nil && sz >= 0:
			rec := journal.Record{Op: journal.OpRemovexattr, GFID: g, Xattr: capsXattr}
			if errno := r.record(&rec); errno != 0 {
				return errno
			}
			if err := unix.Lremovexattr(p, capsXattr); err != nil && err != unix.ENODATA {
				return syscall.Errno(err.(syscall.Errno))
			}
			n.noCaps.Store(true)
		}
	}
	if privileged(ctx) {
		return 0
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err.(syscall.Errno)
	}
	return n.killSuidgid(p, g, st.Mode)
}

func (n *node) killSuidgid(p string, g [16]byte, mode uint32) syscall.Errno {
	m, kill := suidgidKill(mode)
	if !kill || mode&syscall.S_IFMT != syscall.S_IFREG {
		return 0
	}
	rec := journal.Record{Op: journal.OpSetattr, GFID: g, Mask: journal.AttrMode}
	if errno := n.fs.record(&rec); errno != 0 {
		return errno
	}
	if err := unix.Chmod(p, m&07777); err != nil {
		return err.(syscall.Errno)
	}
	return 0
}

// setattrKill handles FATTR_KILL_SUIDGID, which the kernel sets on a
// truncate or chown by an unprivileged process.
func (n *node) setattrKill(in *fuse.SetAttrIn, p string, g [16]byte) syscall.Errno {
	if in.Valid&fuse.FATTR_KILL_SUIDGID == 0 || in.Valid&fuse.FATTR_MODE != 0 {
		return 0
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err.(syscall.Errno)
	}
	return n.killSuidgid(p, g, st.Mode)
}
