package fs

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
)

// ReconcileStats counts what Reconcile found and fixed.
type ReconcileStats struct {
	Inodes   int // inodes walked
	Assigned int // inodes that got a new gfid
	Fixed    int // index entries added or repointed
	Removed  int // stale index entries removed
}

// Reconcile makes the gfid index exact: it runs on a new brick (to index
// what it already holds) and after an unclean shutdown (a crash can leave
// an inode without its index entry, or an entry whose last name is gone).
func Reconcile(b *Brick, idx *index, log *zap.Logger) (ReconcileStats, error) {
	var st ReconcileStats
	dirs := map[string]gfid.GFID{b.Path: gfid.Root}
	if err := unix.Lsetxattr(b.Path, b.GFIDXattr, gfid.Root[:], 0); err != nil {
		return st, err
	}
	if err := idx.setDir(gfid.Root, gfid.Root, ""); err != nil {
		return st, err
	}
	state := filepath.Join(b.Path, gfid.StateDir)
	err := filepath.WalkDir(b.Path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == b.Path {
			return nil
		}
		if p == state {
			return filepath.SkipDir
		}
		st.Inodes++
		isDir := d.IsDir()
		var buf [16]byte
		g := gfid.Zero
		if sz, err := unix.Lgetxattr(p, b.GFIDXattr, buf[:]); err == nil && sz == 16 {
			g = gfid.GFID(buf)
		} else if err != nil && err != unix.ENODATA {
			return err
		}
		if g.IsZero() {
			g = gfid.New()
			if err := unix.Lsetxattr(p, b.GFIDXattr, g[:], 0); err != nil {
				return err
			}
			st.Assigned++
		}
		if isDir {
			dirs[p] = g
			pg := dirs[filepath.Dir(p)]
			want := gfid.DirPointer(pg, filepath.Base(p))
			if t, err := os.Readlink(filepath.Join(b.IndexDir(), rel(g))); err != nil || t != want {
				st.Fixed++
				return idx.setDir(g, pg, filepath.Base(p))
			}
			return nil
		}
		var fst, ist unix.Stat_t
		if err := unix.Lstat(p, &fst); err != nil {
			return err
		}
		if err := unix.Fstatat(idx.fd, rel(g), &ist, unix.AT_SYMLINK_NOFOLLOW); err == nil {
			if ist.Ino == fst.Ino && ist.Dev == fst.Dev {
				return nil
			}
			// The entry names another inode: this inode's gfid was
			// copied from elsewhere. Give it an identity of its own.
			g = gfid.New()
			if err := unix.Lsetxattr(p, b.GFIDXattr, g[:], 0); err != nil {
				return err
			}
			st.Assigned++
		}
		st.Fixed++
		return idx.addLink(g, p)
	})
	if err != nil {
		return st, err
	}
	removed, err := pruneIndex(b, idx, log)
	st.Removed = removed
	return st, err
}

// pruneIndex removes index entries of non-directories that no name in the
// brick reaches any more, and directory pointers that lead nowhere.
func pruneIndex(b *Brick, idx *index, log *zap.Logger) (int, error) {
	removed := 0
	err := filepath.WalkDir(b.IndexDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		g, perr := gfid.Parse(filepath.Base(p))
		if perr != nil {
			log.Warn("stray file in gfid index", zap.String("path", p))
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return nil
		}
		var stale bool
		switch {
		case g == gfid.Root:
		case st.Nlink > 1:
			// A live non-directory (a user's symlink included).
		case st.Mode&syscall.S_IFMT != syscall.S_IFLNK:
			stale = true
		default:
			// A directory pointer is live when it leads to a directory
			// that carries this gfid.
			// (walked by DirPath: no kernel symlink-depth limit).
			var buf [16]byte
			rp, derr := DirPath(b.Path, g)
			if derr != nil {
				stale = true
				break
			}
			sz, xerr := unix.Lgetxattr(filepath.Join(b.Path, rp), b.GFIDXattr, buf[:])
			stale = xerr != nil || sz != 16 || gfid.GFID(buf) != g
		}
		if stale {
			removed++
			return os.Remove(p)
		}
		return nil
	})
	return removed, err
}
