package replicator

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/layout"
	"github.com/replfs/replfs/internal/target"
)

// A mirror directory is used only when it is empty, or already a mirror
// of this brick (its .replfs/target.json names the brick), or when the
// operator asked to adopt it (mirror-adopt=): a crawl makes a mirror equal
// to the brick, so whatever else a directory holds would be removed.
// Nothing in a mirror is followed: its root, .replfs and the directories
// replfs keeps there must be directories of their own, or Open would make
// directories and empty tmp wherever a symlink leads.

// ReadTargetInfo reads dir/.replfs/target.json; ok is false when there is
// none. dir must be a directory, not a symlink, and hold no brick.json.
func ReadTargetInfo(dir string) (TargetInfo, bool, error) {
	root, err := openMirrorRoot(dir)
	if err != nil {
		return TargetInfo{}, false, err
	}
	defer root.Close()
	return readInfoAt(root)
}

// openMirrorRoot opens a mirror directory, refusing a symlink: the
// operator named one directory, and a symlink may be repointed under a
// running daemon.
func openMirrorRoot(dir string) (*layout.Root, error) {
	var st unix.Stat_t
	// Cleaned: with a trailing slash the kernel would follow a symlink.
	clean := filepath.Clean(dir)
	if err := unix.Lstat(clean, &st); err != nil {
		if err == unix.ENOENT {
			return nil, fmt.Errorf("mirror %s does not exist", dir)
		}
		return nil, fmt.Errorf("mirror %s: %w", dir, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
	case unix.S_IFLNK:
		to, _ := filepath.EvalSymlinks(dir)
		return nil, fmt.Errorf("mirror %s is a symlink (to %s); name the directory itself", dir, to)
	default:
		return nil, fmt.Errorf("mirror %s is not a directory", dir)
	}
	r, err := layout.OpenRoot(clean)
	if err != nil {
		return nil, fmt.Errorf("mirror %w", err)
	}
	return r, nil
}

// readInfoAt checks replfs's directories in the mirror and that it is not
// a brick, and reads its target.json (ok is false when it has none).
func readInfoAt(root *layout.Root) (TargetInfo, bool, error) {
	var ti TargetInfo
	dir := root.Path()
	if err := checkStateDirs(root); err != nil {
		return ti, false, err
	}
	sfd, err := root.OpenDir(gfid.StateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return ti, false, nil
	}
	if err != nil {
		return ti, false, fmt.Errorf("mirror %w", err)
	}
	defer unix.Close(sfd)
	var st unix.Stat_t
	if unix.Fstatat(sfd, "brick.json", &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		return ti, false, fmt.Errorf("%s is a replfs brick, not a mirror", dir)
	}
	data, err := layout.ReadInfoFile(sfd, "target.json", layout.MaxInfoSize)
	if errors.Is(err, fs.ErrNotExist) {
		return ti, false, nil
	}
	if err != nil {
		return ti, false, fmt.Errorf("mirror %s: %s/%v; put back the target.json replfs wrote, or move it away and mount with mirror-adopt=%s",
			dir, root.Abs(gfid.StateDir), err, dir)
	}
	if err := json.Unmarshal(data, &ti); err != nil {
		return ti, false, fmt.Errorf("mirror %s: corrupt .replfs/target.json: %v", dir, err)
	}
	return ti, true, nil
}

// checkStateDirs refuses a .replfs, or a directory replfs keeps in it,
// that is anything but a directory (absent is fine: Open makes it).
// Parents come first, so the component that fails is the last one.
func checkStateDirs(root *layout.Root) error {
	for _, rel := range []string{gfid.StateDir, gfid.IndexDir, tmpDir, limboDir} {
		fd, err := root.OpenDir(rel)
		if err == nil {
			unix.Close(fd)
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		// The parents are directories (checked first): lstat names what
		// the last component is.
		var st unix.Stat_t
		what := "is not a directory"
		if unix.Fstatat(root.FD(), rel, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				return fmt.Errorf("mirror %w", err)
			case unix.S_IFLNK:
				what = "is a symlink"
			case unix.S_IFREG:
				what = "is a regular file"
			}
		}
		return fmt.Errorf("mirror %s: %s %s, where replfs keeps a directory of its own (it follows no link there); move it away",
			root.Path(), root.Abs(rel), what)
	}
	return nil
}

// checkEmpty refuses a directory that is not a mirror yet and holds
// anything but an empty .replfs (what a first Open cut short leaves).
func checkEmpty(root *layout.Root) error {
	for _, rel := range []string{".", gfid.StateDir} {
		fd, err := root.OpenDir(rel)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("mirror %w", err)
		}
		names, err := readNamesFD(fd, root.Abs(rel))
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("mirror %w", err)
		}
		for _, e := range names {
			if rel != "." || e.name != gfid.StateDir {
				return fmt.Errorf("mirror %s is not empty and is not a mirror of this brick (no .replfs/target.json): replfs would delete what it holds; "+
					"name an empty directory, or to seed the mirror from this copy mount with mirror-adopt=%s (what the brick does not have is removed, listed first in %s)",
					root.Path(), root.Path(), root.Abs(adoptList))
			}
		}
	}
	return nil
}

// checkTargetInfo refuses a target.json this replfs cannot use for brickID.
func checkTargetInfo(dir string, ti TargetInfo, brickID string) error {
	switch {
	case ti.Format != TargetFormat:
		return fmt.Errorf("mirror %s: unsupported target format %d (this replfs reads %d)", dir, ti.Format, TargetFormat)
	case ti.Brick != brickID:
		return fmt.Errorf("mirror %s is already a mirror %w (%s)", dir, target.ErrOtherBrick, ti.Brick)
	case ti.Xattr != "trusted" && ti.Xattr != "user":
		return fmt.Errorf("mirror %s: target.json names unknown xattr namespace %q", dir, ti.Xattr)
	}
	return nil
}

// readInfo checks the mirror directory and reads its target.json (ok is
// false when it has none).
func (m *Mirror) readInfo() (TargetInfo, bool, error) { return ReadTargetInfo(m.path) }

// Open checks the mirror directory and makes it a mirror of brickID on
// first use. A directory that is a brick, a mirror of another brick, or
// not empty, is refused.
func (m *Mirror) Open(ctx context.Context, brickID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.openAs(brickID, false)
}

// openAs is Open; adopt accepts a directory that is not empty.
func (m *Mirror) openAs(brickID string, adopt bool) error {
	// A reopen (after the mirror failed) resolves the path anew.
	m.Close()
	root, err := openMirrorRoot(m.path)
	if err != nil {
		return err
	}
	defer root.Close()
	ti, ok, err := readInfoAt(root)
	if err != nil {
		return err
	}
	if ok {
		if err := checkTargetInfo(m.path, ti, brickID); err != nil {
			return err
		}
	} else {
		if !adopt {
			if err := checkEmpty(root); err != nil {
				return err
			}
		}
		ti = TargetInfo{Format: TargetFormat, Kind: "mirror", ID: gfid.New().String(), Brick: brickID,
			Xattr: probeXattr(m.path), Created: time.Now().UTC()}
		// target.json comes first: a crash after it leaves a mirror the
		// next Open takes up, not a half-made one that looks like data.
		if err := writeTargetInfo(root, ti); err != nil {
			return err
		}
	}
	m.use(ti)
	for _, d := range []string{gfid.IndexDir, tmpDir, limboDir} {
		if err := root.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("mirror %s: %w", m.path, err)
		}
	}
	m.initCreator()
	if fd, err := root.OpenDir(gfid.IndexDir); err == nil {
		if names, err := readNamesFD(fd, root.Abs(gfid.IndexDir)); err == nil && len(names) == 0 {
			m.fresh.Store(true)
		}
		unix.Close(fd)
	}
	if err := m.setRootGFID(); err != nil {
		return err
	}
	if err := m.setDirPointer(gfid.Root, gfid.Zero, ""); err != nil {
		return fmt.Errorf("mirror %s: %w", m.path, err)
	}
	// Transfers cut short by a crash leave temporary files: drop them.
	return cleanTmp(root)
}

func writeTargetInfo(root *layout.Root, ti TargetInfo) error {
	if err := root.MkdirAll(gfid.StateDir, 0o700); err != nil {
		return fmt.Errorf("mirror %s: %w", root.Path(), err)
	}
	sfd, err := root.OpenDir(gfid.StateDir)
	if err != nil {
		return fmt.Errorf("mirror %w", err)
	}
	defer unix.Close(sfd)
	data, _ := json.MarshalIndent(ti, "", "  ")
	if err := layout.WriteFileAtomic(sfd, "target.json", append(data, '\n')); err != nil {
		return fmt.Errorf("mirror %s: %s: %w", root.Path(), root.Abs(gfid.StateDir), err)
	}
	return nil
}

// cleanTmp empties .replfs/tmp through its own descriptor: what is in it
// is unlinked by name there, and a directory in it is opened O_NOFOLLOW
// below it, so nothing outside the mirror can be reached.
func cleanTmp(root *layout.Root) error {
	fd, err := root.OpenDir(tmpDir)
	if err != nil {
		return fmt.Errorf("mirror %w", err)
	}
	defer unix.Close(fd)
	if err := removeContents(fd, root.Abs(tmpDir), 0); err != nil {
		return fmt.Errorf("mirror %s: clean %s: %w", root.Path(), root.Abs(tmpDir), err)
	}
	return nil
}

func removeContents(dfd int, shown string, depth int) error {
	if depth > 64 {
		return fmt.Errorf("%s: nested too deep", shown)
	}
	names, err := readNamesFD(dfd, shown)
	if err != nil {
		return err
	}
	for _, e := range names {
		err := unix.Unlinkat(dfd, e.name, 0)
		if err == unix.EISDIR {
			sub, oerr := unix.Openat(dfd, e.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if oerr != nil {
				return &fs.PathError{Op: "open", Path: shown + "/" + e.name, Err: oerr}
			}
			err = removeContents(sub, shown+"/"+e.name, depth+1)
			unix.Close(sub)
			if err != nil {
				return err
			}
			err = unix.Unlinkat(dfd, e.name, unix.AT_REMOVEDIR)
		}
		if err != nil && err != unix.ENOENT {
			return &fs.PathError{Op: "remove", Path: shown + "/" + e.name, Err: err}
		}
	}
	return nil
}

// use makes ti the mirror's identity and sets the xattr names it implies.
func (m *Mirror) use(ti TargetInfo) {
	m.info = ti
	ns := ti.Xattr
	m.t = newTree(m.path, ns+".replfs.gfid", "")
	m.namesX, m.stimeX = ns+".replfs.pgfid", ns+".replfs.stime"
	m.dirs = make(map[gfid.GFID]string)
}

func probeXattr(dir string) string {
	const probe = "trusted.replfs.probe"
	if err := xattr.LSet(dir, probe, []byte{1}); err == nil {
		xattr.LRemove(dir, probe)
		return "trusted"
	}
	return "user"
}

// Check tells whether the mirror is still there and still the same one.
func (m *Mirror) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := os.Lstat(m.path); err != nil {
		return target.Down(target.Unavailable, fmt.Errorf("mirror %s is gone: %w", m.path, err))
	}
	ti, ok, err := ReadTargetInfo(m.path)
	if err != nil {
		return target.Down(target.Unavailable, err)
	}
	if !ok || ti.ID != m.info.ID {
		return target.Down(target.Unavailable, fmt.Errorf("mirror %s is no longer this mirror (target.json missing or replaced)", m.path))
	}
	if err := unix.Access(m.path, unix.W_OK); err != nil {
		return target.Down(target.Unavailable, fmt.Errorf("mirror %s is not writable: %w", m.path, err))
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(m.path, &sfs); err == nil && sfs.Flags&unix.ST_RDONLY != 0 {
		return target.Down(target.ReadOnly, fmt.Errorf("mirror %s is on a read-only filesystem", m.path))
	}
	return nil
}

// adoptList is where AdoptCopy lists what the first crawl removes.
const adoptList = ".replfs/adopt/removed.txt"

// AdoptReport tells what AdoptCopy did.
type AdoptReport struct {
	Adopted bool   // false: the directory was a mirror of this brick already
	Removed int    // entries listed: what the first crawl removes
	List    string // where they are listed
}

// AdoptCopy makes directory m, an existing copy of the brick at brick
// (mirror-adopt=), a mirror of brickID, so that the first crawl of Open's
// worker seeds it: what the copy already holds at the brick's paths stays
// (and is updated). Before anything is removed it lists what that crawl
// will remove in .replfs/adopt/removed.txt: every entry of the copy not at
// the same path in the brick, or there as another file type, and all that
// is below it. A directory that is a mirror of this brick already is a
// plain mirror: nothing is done.
func (m *Mirror) AdoptCopy(brick, brickID string) (AdoptReport, error) {
	root, err := openMirrorRoot(m.path)
	if err != nil {
		return AdoptReport{}, err
	}
	defer root.Close()
	ti, ok, err := readInfoAt(root)
	if err != nil {
		return AdoptReport{}, err
	}
	if ok {
		return AdoptReport{}, checkTargetInfo(m.path, ti, brickID)
	}
	n, err := writeAdoptList(root, brick)
	if err != nil {
		return AdoptReport{}, fmt.Errorf("mirror %s: list what adopting it removes: %w", m.path, err)
	}
	ti = TargetInfo{Format: TargetFormat, Kind: "mirror", ID: gfid.New().String(), Brick: brickID,
		Xattr: probeXattr(m.path), Created: time.Now().UTC()}
	if err := writeTargetInfo(root, ti); err != nil {
		return AdoptReport{}, err
	}
	return AdoptReport{Adopted: true, Removed: n, List: root.Abs(adoptList)}, nil
}

// writeAdoptList writes the list of AdoptCopy (aside, then renamed in) and
// returns how many entries it holds.
func writeAdoptList(root *layout.Root, brick string) (int, error) {
	bfd, err := unix.Open(brick, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &fs.PathError{Op: "open", Path: brick, Err: err}
	}
	defer unix.Close(bfd)
	dir, name := filepath.Split(adoptList)
	if err := root.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	afd, err := root.OpenDir(dir)
	if err != nil {
		return 0, err
	}
	defer unix.Close(afd)
	tmp := name + ".tmp"
	unix.Unlinkat(afd, tmp, 0)
	fd, err := unix.Openat(afd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return 0, &fs.PathError{Op: "create", Path: root.Abs(adoptList + ".tmp"), Err: err}
	}
	f := os.NewFile(uintptr(fd), root.Abs(adoptList+".tmp"))
	a := &adoptWalk{w: bufio.NewWriter(f)}
	fmt.Fprintf(a.w, "# entries of %s that are not at the same path in the brick %s, or are there as another file type:\n"+
		"# the first crawl removes them (a directory's entries are listed too; a directory ends in /)\n", root.Path(), brick)
	mfd, err := root.OpenDir(".")
	if err == nil {
		err = a.dir("", mfd, bfd)
		unix.Close(mfd)
	}
	if err == nil {
		err = a.w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(afd, tmp, afd, name)
	}
	if err != nil {
		unix.Unlinkat(afd, tmp, 0)
		return 0, err
	}
	return a.n, unix.Fsync(afd)
}

type adoptWalk struct {
	w *bufio.Writer
	n int
}

// dir lists what is to go of directory rel of the copy (open as mfd); bfd
// is the same directory of the brick, or -1 when the brick has none.
func (a *adoptWalk) dir(rel string, mfd, bfd int) error {
	names, err := readNamesFD(mfd, rel)
	if err != nil {
		return err
	}
	slices.SortFunc(names, func(x, y dirent) int { return strings.Compare(x.name, y.name) })
	for _, e := range names {
		if rel == "" && e.name == gfid.StateDir {
			continue
		}
		p := layout.Join(rel, e.name)
		var ms, bs unix.Stat_t
		if err := unix.Fstatat(mfd, e.name, &ms, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &fs.PathError{Op: "lstat", Path: p, Err: err}
		}
		isDir := ms.Mode&unix.S_IFMT == unix.S_IFDIR
		kept := bfd >= 0 && unix.Fstatat(bfd, e.name, &bs, unix.AT_SYMLINK_NOFOLLOW) == nil &&
			bs.Mode&unix.S_IFMT == ms.Mode&unix.S_IFMT
		if !kept {
			a.list(p, isDir)
		}
		if isDir {
			if err := a.sub(p, e.name, mfd, bfd, kept); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *adoptWalk) sub(p, name string, mfd, bfd int, kept bool) error {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	cm, err := unix.Openat(mfd, name, flags, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(cm)
	cb := -1
	if kept {
		if cb, err = unix.Openat(bfd, name, flags, 0); err != nil {
			return &fs.PathError{Op: "open brick", Path: p, Err: err}
		}
		defer unix.Close(cb)
	}
	return a.dir(p, cm, cb)
}

// list writes one path, quoted (Go syntax) when a byte of it would break
// the one-path-a-line form.
func (a *adoptWalk) list(p string, dir bool) {
	if dir {
		p += "/"
	}
	quote := !utf8.ValidString(p) || strings.HasPrefix(p, `"`) || strings.HasPrefix(p, "#")
	for i := 0; i < len(p) && !quote; i++ {
		quote = p[i] < 0x20 || p[i] == 0x7f
	}
	if quote {
		p = strconv.Quote(p)
	}
	a.w.WriteString(p)
	a.w.WriteByte('\n')
	a.n++
}
