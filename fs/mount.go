package fs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/mountinfo"
	"github.com/replfs/replfs/internal/options"
	"github.com/replfs/replfs/journal"
)

// Config describes one mount.
type Config struct {
	Brick      string
	Mountpoint string

	Rollover  time.Duration // journal segment window (default 1s)
	Retention time.Duration // journal retention (default 24h)

	// Kernel cache timeouts. Every change goes through the mount, so the
	// kernel may cache entries and attributes; the brick must not be
	// changed behind the mount's back.
	EntryTimeout    time.Duration
	AttrTimeout     time.Duration
	NegativeTimeout time.Duration

	AllowOther bool // let other users use the mount (permission checks by the kernel)
	ReadOnly   bool
	Debug      bool // log every FUSE request
	FsName     string

	Logger *zap.Logger
}

// DefaultTimeout is the default kernel entry/attribute cache timeout.
const DefaultTimeout = 60 * time.Second

// Server is a live replfs mount.
type Server struct {
	cfg    Config
	brick  *Brick
	fs     *replfs
	server *fuse.Server
	done   chan struct{}
	closed bool
}

// CheckMountpoint validates a mountpoint without changing anything.
func CheckMountpoint(mnt string) (string, error) {
	abs, err := filepath.Abs(mnt)
	if err != nil {
		return "", fmt.Errorf("mountpoint %s: %w", mnt, err)
	}
	st, err := os.Stat(abs)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("mountpoint %s does not exist", mnt)
	}
	if errors.Is(err, syscall.ENOTCONN) {
		return "", fmt.Errorf("mountpoint %s is a dead FUSE mount (transport endpoint is not connected); detach it with: umount -l %s", mnt, abs)
	}
	if err != nil {
		return "", fmt.Errorf("mountpoint %s: %w", mnt, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("mountpoint %s is not a directory", mnt)
	}
	if mountinfo.IsMountpoint(abs) {
		return "", fmt.Errorf("mountpoint %s is already in use (something is mounted there)", mnt)
	}
	return abs, nil
}

// Validate checks a brick and a mountpoint before anything is changed:
// both exist and are directories, neither contains the other (by device
// and inode, whatever symlink or bind mount leads there: a mount inside
// its own brick deadlocks), the mountpoint is free, no other replfs serves
// the brick, and an existing journal reads cleanly. It returns their
// absolute paths.
func Validate(brick, mnt string) (string, string, error) {
	absMnt, err := CheckMountpoint(mnt)
	if err != nil {
		return "", "", err
	}
	absBrick, err := CheckBrick(brick)
	if err != nil {
		return "", "", err
	}
	if err := options.CheckSeparate([]options.Dir{{What: "brick", Path: absBrick}, {What: "mountpoint", Path: absMnt}}); err != nil {
		return "", "", err
	}
	if h := LockHolder(absBrick); h != 0 && IsMountedBrick(absBrick) {
		return "", "", fmt.Errorf("%w: %s (pid %d)", ErrBrickBusy, brick, h)
	}
	jdir := filepath.Join(absBrick, gfid.StateDir, "journal")
	if _, err := os.Stat(jdir); err == nil {
		if _, err := journal.Segments(jdir); err != nil {
			return "", "", fmt.Errorf("brick %s: %w", brick, err)
		}
	}
	return absBrick, absMnt, nil
}

// Mount opens the brick and its journal and mounts it. Validation comes
// first, so a bad mountpoint or brick changes nothing.
func Mount(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	brickPath, mnt, err := Validate(cfg.Brick, cfg.Mountpoint)
	if err != nil {
		return nil, err
	}
	cfg.Mountpoint = mnt
	// OpenBrick waits a little for a daemon that is just shutting down.
	b, err := OpenBrick(brickPath, 5*time.Second)
	if err != nil {
		return nil, err
	}
	s, err := mountBrick(cfg, b)
	if err != nil {
		b.Close()
		return nil, err
	}
	return s, nil
}

// IsMountedBrick reports whether a replfs mount of brick is live.
func IsMountedBrick(brick string) bool {
	mounts, _ := mountinfo.Replfs()
	for _, m := range mounts {
		if m.Source == brick || m.Brick() == brick {
			return true
		}
	}
	return false
}

func mountBrick(cfg Config, b *Brick) (*Server, error) {
	log := cfg.Logger
	r := &replfs{
		brick:     b,
		log:       log,
		openWrite: map[*node]int{},
		dirty:     map[*node]int64{},
	}
	idx, err := openIndex(b)
	if err != nil {
		return nil, err
	}
	r.idx = idx
	if b.Unclean {
		log.Info("reconciling gfid index (new brick or unclean shutdown)", zap.String("brick", b.Path))
		st, err := Reconcile(b, idx, log)
		if err != nil {
			idx.close()
			return nil, fmt.Errorf("brick %s: reconcile gfid index: %w", b.Path, err)
		}
		log.Info("gfid index reconciled", zap.Int("assigned", st.Assigned), zap.Int("removed", st.Removed), zap.Int("inodes", st.Inodes))
	}
	j, err := journal.Open(journal.Options{
		Dir:        b.JournalDir(),
		Rollover:   cfg.Rollover,
		Retention:  cfg.Retention,
		Logger:     log.Named("journal"),
		OnRollover: r.onRollover,
	})
	if err != nil {
		idx.close()
		return nil, fmt.Errorf("brick %s: %w", b.Path, err)
	}
	r.j = j
	if err := b.MarkRunning(); err != nil {
		j.Close()
		idx.close()
		return nil, fmt.Errorf("brick %s: %w", b.Path, err)
	}

	var st syscall.Stat_t
	if err := syscall.Stat(b.Path, &st); err != nil {
		return nil, err
	}
	rootData := &gofs.LoopbackRoot{Path: b.Path, Dev: uint64(st.Dev)}
	root := &node{LoopbackNode: &gofs.LoopbackNode{RootData: rootData}, fs: r}
	rootData.RootNode = root
	r.root = root
	root.setID(gfid.Root)

	r.retire = newRetirer(idx, log)
	opts := mountOptions(cfg)
	server, err := gofs.Mount(cfg.Mountpoint, root, opts)
	if err != nil {
		r.retire.close()
		j.Close()
		idx.close()
		b.MarkClean()
		return nil, fmt.Errorf("mount %s on %s: %w", b.Path, cfg.Mountpoint, err)
	}
	s := &Server{cfg: cfg, brick: b, fs: r, server: server, done: make(chan struct{})}
	go func() {
		server.Wait()
		close(s.done)
	}()
	return s, nil
}

func mountOptions(cfg Config) *gofs.Options {
	or := func(d time.Duration) *time.Duration {
		if d == 0 {
			d = DefaultTimeout
		}
		if d < 0 {
			d = 0
		}
		return &d
	}
	fsname := cfg.FsName
	if fsname == "" {
		fsname = cfg.Brick
	}
	mo := fuse.MountOptions{
		FsName:        fsname,
		Name:          "replfs",
		AllowOther:    cfg.AllowOther,
		DirectMount:   os.Geteuid() == 0,
		EnableLocks:   true,
		MaxWrite:      1 << 20,
		MaxBackground: 64,
		Debug:         cfg.Debug,
		// See killpriv.go: saves two round trips per written file.
		ExtraCapabilities: fuse.CAP_HANDLE_KILLPRIV_V2,
	}
	// The daemon runs as root: when other users may use the mount, the
	// kernel must check their permissions against the brick's modes.
	// For a private mount that check costs a GETATTR of the parent per
	// create, for nothing.
	if cfg.AllowOther {
		mo.Options = append(mo.Options, "default_permissions")
	}
	if cfg.ReadOnly {
		mo.Options = append(mo.Options, "ro")
	}
	return &gofs.Options{
		MountOptions:    mo,
		EntryTimeout:    or(cfg.EntryTimeout),
		AttrTimeout:     or(cfg.AttrTimeout),
		NegativeTimeout: or(cfg.NegativeTimeout),
	}
}

// Wait blocks until the file system is unmounted (by Unmount, umount(8)
// or the kernel), then closes the journal.
func (s *Server) Wait() error {
	<-s.done
	return s.Close()
}

// Done is closed when the kernel mount is gone.
func (s *Server) Done() <-chan struct{} { return s.done }

// Unmount detaches the mount and closes the journal.
func (s *Server) Unmount() error {
	var err error
	for i := 0; i < 50; i++ {
		err = s.server.Unmount()
		if err == nil || !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", s.cfg.Mountpoint, err)
	}
	<-s.done
	return s.Close()
}

// Close seals the journal, flushes xtimes and releases the brick. It is
// called after the mount is gone.
func (s *Server) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.fs.flushXtime()
	err := s.fs.j.Close()
	s.fs.flushXtime()
	s.fs.retire.close()
	s.fs.idx.close()
	if err == nil {
		err = s.brick.MarkClean()
	}
	if cerr := s.brick.Close(); err == nil {
		err = cerr
	}
	return err
}

// Brick returns the brick's absolute path.
func (s *Server) Brick() string { return s.brick.Path }

// Journal returns the mount's journal (for tests and the replicator).
func (s *Server) Journal() *journal.Journal { return s.fs.j }

// BrickInfo returns what the replicator needs of the brick: its id and
// the names of the gfid and xtime xattrs in use.
func (s *Server) BrickInfo() (id, gfidXattr, xtimeXattr string) {
	return s.brick.Info.ID, s.brick.GFIDXattr, s.brick.XtimeXattr
}
