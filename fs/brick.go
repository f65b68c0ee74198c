package fs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/layout"
)

// BrickFormat is the version of the on-disk brick layout (docs/formats.md).
const BrickFormat = 1

// BrickInfo is the content of .replfs/brick.json.
type BrickInfo struct {
	Format int    `json:"format"`
	ID     string `json:"id"`
	// Xattr is "trusted" or "user": the namespace of replfs's xattrs.
	Xattr   string    `json:"xattr"`
	Created time.Time `json:"created"`
}

// Brick is an opened, locked brick.
type Brick struct {
	Path string
	Info BrickInfo
	// GFIDXattr and XtimeXattr are the xattr names in use on this brick.
	GFIDXattr  string
	XtimeXattr string
	// Unclean is set when the previous mount of this brick did not shut
	// down cleanly (or the brick is new): its gfid index must be
	// reconciled before use.
	Unclean bool

	lock *os.File
}

// Paths inside a brick.
func (b *Brick) StateDir() string   { return filepath.Join(b.Path, gfid.StateDir) }
func (b *Brick) JournalDir() string { return filepath.Join(b.Path, gfid.StateDir, "journal") }
func (b *Brick) IndexDir() string   { return filepath.Join(b.Path, gfid.IndexDir) }
func (b *Brick) RunDir() string     { return filepath.Join(b.Path, gfid.StateDir, "run") }
func (b *Brick) LogDir() string     { return filepath.Join(b.Path, gfid.StateDir, "log") }
func (b *Brick) dirtyMarker() string {
	return filepath.Join(b.Path, gfid.StateDir, "run", "dirty")
}

// ErrBrickBusy is returned when another replfs holds the brick.
var ErrBrickBusy = errors.New("brick is already mounted by another replfs")

// CheckBrick validates a brick path without changing anything.
func CheckBrick(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("brick %s: %w", path, err)
	}
	st, err := os.Stat(abs)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("brick %s does not exist", path)
	}
	if err != nil {
		return "", fmt.Errorf("brick %s: %w", path, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("brick %s is not a directory", path)
	}
	if fi, err := os.Lstat(filepath.Join(abs, gfid.StateDir)); err == nil && !fi.IsDir() {
		return "", fmt.Errorf("brick %s: %s exists and is not a directory", path, gfid.StateDir)
	}
	if info, ok, err := readInfoFile(path, abs); err != nil {
		return "", err
	} else if ok && info.Format != BrickFormat {
		return "", fmt.Errorf("brick %s: unsupported brick format %d (this replfs reads %d)", path, info.Format, BrickFormat)
	}
	return abs, nil
}

// readInfoFile reads abs/.replfs/brick.json (ok false when there is none).
// The file is read through layout.ReadInfoPath: a fifo there would hang
// the mount, a symlink to /dev/zero exhaust memory.
func readInfoFile(path, abs string) (info BrickInfo, ok bool, err error) {
	p := filepath.Join(abs, gfid.StateDir, "brick.json")
	data, err := layout.ReadInfoPath(p, layout.MaxInfoSize)
	if errors.Is(err, os.ErrNotExist) {
		return info, false, nil
	}
	if err != nil {
		return info, false, fmt.Errorf("brick %s: %v; put back the brick.json replfs wrote (its id ties the brick to its mirrors)", path, err)
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, false, fmt.Errorf("brick %s: corrupt %s/brick.json: %v", path, gfid.StateDir, err)
	}
	return info, true, nil
}

// ReadBrickID returns the id in a brick's brick.json, "" when the brick
// has none yet (it gets one at its first mount).
func ReadBrickID(path string) (string, error) {
	abs, err := CheckBrick(path)
	if err != nil {
		return "", err
	}
	info, _, err := readInfoFile(path, abs)
	return info.ID, err
}

// LockHolder returns the pid recorded by the replfs that holds the brick,
// or 0 when nobody holds it.
func LockHolder(brick string) int {
	f, err := openOwn(filepath.Join(brick, gfid.StateDir, "run", "lock"), unix.O_RDONLY)
	if err != nil {
		return 0
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return 0
	}
	b := make([]byte, 32)
	n, _ := f.Read(b)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if pid == 0 {
		pid = -1
	}
	return pid
}

// OpenBrick creates the .replfs layout if needed, takes the brick lock
// (waiting up to wait for a previous daemon that is still shutting down)
// and reads brick.json.
func OpenBrick(path string, wait time.Duration) (*Brick, error) {
	abs, err := CheckBrick(path)
	if err != nil {
		return nil, err
	}
	b := &Brick{Path: abs}
	for _, d := range []string{b.StateDir(), b.RunDir(), b.IndexDir(), b.JournalDir(), b.LogDir(),
		filepath.Join(b.StateDir(), "state")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("brick %s: create %s: %w", path, d, err)
		}
	}
	if err := b.takeLock(wait); err != nil {
		return nil, err
	}
	if err := b.loadInfo(); err != nil {
		b.Close()
		return nil, err
	}
	if _, err := os.Stat(b.dirtyMarker()); err == nil {
		b.Unclean = true
	}
	return b, nil
}

func (b *Brick) takeLock(wait time.Duration) error {
	f, err := openOwn(filepath.Join(b.RunDir(), "lock"), unix.O_RDWR|unix.O_CREAT)
	if err != nil {
		return fmt.Errorf("brick %s: lock: %w", b.Path, err)
	}
	deadline := time.Now().Add(wait)
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if err != unix.EWOULDBLOCK || time.Now().After(deadline) {
			f.Close()
			if err == unix.EWOULDBLOCK {
				pid := LockHolder(b.Path)
				return fmt.Errorf("%w: %s (pid %d)", ErrBrickBusy, b.Path, pid)
			}
			return fmt.Errorf("brick %s: lock: %w", b.Path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	b.lock = f
	return nil
}

func (b *Brick) loadInfo() error {
	p := filepath.Join(b.StateDir(), "brick.json")
	info, ok, err := readInfoFile(b.Path, b.Path)
	if err != nil {
		return err
	}
	if ok {
		b.Info = info
	} else {
		b.Info = BrickInfo{Format: BrickFormat, ID: gfid.New().String(), Xattr: probeNamespace(b.Path), Created: time.Now().UTC()}
		// A new brick must have its pre-existing content indexed.
		if err := b.MarkRunning(); err != nil {
			return err
		}
		if err := layout.WriteFileAtomicPath(p, mustJSON(b.Info)); err != nil {
			return fmt.Errorf("brick %s: write brick.json: %w", b.Path, err)
		}
	}
	switch b.Info.Xattr {
	case "trusted":
		b.GFIDXattr, b.XtimeXattr = gfid.XattrTrusted, gfid.XtimeTrusted
	case "user":
		b.GFIDXattr, b.XtimeXattr = gfid.XattrUser, gfid.XtimeUser
	default:
		return fmt.Errorf("brick %s: brick.json names unknown xattr namespace %q", b.Path, b.Info.Xattr)
	}
	return nil
}

// probeNamespace picks trusted.* when this process may set it on the brick.
func probeNamespace(brick string) string {
	const probe = "trusted.replfs.probe"
	if err := xattr.LSet(brick, probe, []byte{1}); err == nil {
		xattr.LRemove(brick, probe)
		return "trusted"
	}
	return "user"
}

// MarkRunning records that a mount is live; a crash leaves the marker
// behind so that the next mount reconciles the index.
func (b *Brick) MarkRunning() error {
	f, err := openOwn(b.dirtyMarker(), unix.O_WRONLY|unix.O_CREAT)
	if err != nil {
		return fmt.Errorf("brick %s: %w", b.Path, err)
	}
	return f.Close()
}

// openOwn opens one of replfs's own files in the brick's .replfs without
// following a symlink (one planted there would have replfs truncate or
// write a file elsewhere) or blocking on a fifo; anything but a regular
// file is refused, with what to do.
func openOwn(path string, flag int) (*os.File, error) {
	fd, err := unix.Open(path, flag|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	if err == unix.ELOOP {
		return nil, fmt.Errorf("%s is a symlink; remove it (replfs makes this file itself)", path)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a regular file; remove it (replfs makes this file itself)", path)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// MarkClean removes the marker after a clean shutdown.
func (b *Brick) MarkClean() error {
	err := os.Remove(b.dirtyMarker())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Close releases the brick lock.
func (b *Brick) Close() error {
	if b.lock == nil {
		return nil
	}
	b.lock.Truncate(0)
	err := b.lock.Close()
	b.lock = nil
	return err
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// ReadBrick reads an existing brick's identity without locking or changing
// it (for readers such as verify). A directory that has never been mounted
// as a brick is refused.
func ReadBrick(path string) (*Brick, error) {
	abs, err := CheckBrick(path)
	if err != nil {
		return nil, err
	}
	b := &Brick{Path: abs}
	if _, err := os.Stat(filepath.Join(b.StateDir(), "brick.json")); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s is not a replfs brick (no %s/brick.json)", path, gfid.StateDir)
	}
	if err := b.loadInfo(); err != nil {
		return nil, err
	}
	return b, nil
}
