package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/replfs/replfs/fs"
	"github.com/replfs/replfs/internal/exitcode"
	"github.com/replfs/replfs/internal/options"
	"github.com/replfs/replfs/internal/target"
	"github.com/replfs/replfs/replicator"
)

func newMountCmd() *cobra.Command {
	var (
		opts       []string
		foreground bool
		readyFD    int
		fake       bool
		cpuprofile string
	)
	c := &cobra.Command{
		Use:   "mount BRICK MOUNTPOINT [-o OPTIONS]",
		Short: "mount BRICK at MOUNTPOINT through replfs (daemonizes; returns once the mount is ready)",
		Long: "Mount BRICK at MOUNTPOINT. Every change made through the mount is journaled in BRICK/.replfs.\n" +
			"Options (-o, comma-separated, fstab style): " + options.Known + ".\n" +
			"Generic options added by mount(8), fuse3 and systemd (defaults, rw, _netdev, nofail, x-systemd.*, ...) are accepted and ignored.",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 2 {
				return exitcode.UsageError{Err: fmt.Errorf("mount needs BRICK and MOUNTPOINT, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			mo, err := options.Parse(opts)
			if err != nil {
				return exitcode.UsageError{Err: err}
			}
			if fake {
				return nil
			}
			stop, err := startCPUProfile(cpuprofile)
			if err != nil {
				return err
			}
			defer stop()
			if foreground || readyFD > 0 {
				return runMount(args[0], args[1], mo, foreground, readyFD)
			}
			return daemonize(args[0], args[1], opts, mo)
		},
	}
	c.Flags().StringArrayVarP(&opts, "options", "o", nil, "mount options, comma-separated (repeatable)")
	c.Flags().BoolVarP(&foreground, "foreground", "f", false, "stay in the foreground and log to stderr")
	c.Flags().IntVar(&readyFD, "ready-fd", 0, "internal: report readiness on this descriptor")
	c.Flags().BoolVar(&fake, "fake", false, "do everything but the mount (mount -f)")
	c.Flags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the daemon (with -f)")
	c.Flags().MarkHidden("cpuprofile")
	c.Flags().MarkHidden("ready-fd")
	c.Flags().MarkHidden("fake")
	return c
}

// daemonize checks what it can, then re-runs replfs in the background and
// waits until the child reports that the mount is ready or why it failed.
func daemonize(brick, mnt string, opts []string, mo options.Mount) error {
	// The daemon runs in /, so it gets absolute paths.
	brick, mnt, err := fs.Validate(brick, mnt)
	if err != nil {
		return err
	}
	if err := checkMirrors(brick, mnt, mo); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	args := []string{"mount", "--ready-fd=3", brick, mnt}
	for _, o := range opts {
		args = append(args, "-o", o)
	}
	cmd := exec.Command(self, args...)
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	// systemd units run without PATH or HOME: the child needs neither.
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	w.Close()
	msg, _ := io.ReadAll(bufio.NewReader(r))
	r.Close()
	s := strings.TrimSpace(string(msg))
	switch {
	case s == "ready":
		cmd.Process.Release()
		return nil
	case strings.HasPrefix(s, "error "):
		cmd.Wait()
		return errors.New(strings.TrimPrefix(s, "error "))
	default:
		err := cmd.Wait()
		return fmt.Errorf("replfs daemon exited before the mount was ready (%v); see %s", err,
			filepath.Join(brick, ".replfs", "log", "replfs.log"))
	}
}

func newLogger(brick string, mo options.Mount, foreground bool) (*zap.Logger, error) {
	level := zap.InfoLevel
	if mo.LogLevel != "" {
		if err := level.Set(mo.LogLevel); err != nil {
			return nil, err
		}
	}
	if foreground && mo.LogFile == "" {
		cfg := zap.NewDevelopmentConfig()
		cfg.Level = zap.NewAtomicLevelAt(level)
		cfg.DisableStacktrace = true
		return cfg.Build()
	}
	path, flags := mo.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE
	if path == "" {
		// replfs's own file: a symlink planted there is not followed, a
		// fifo not waited on.
		flags |= syscall.O_NOFOLLOW | syscall.O_NONBLOCK
		abs, err := fs.CheckBrick(brick)
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(abs, ".replfs", "log")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		path = filepath.Join(dir, "replfs.log")
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(f), level)), nil
}

// runMount mounts in this process and serves until unmounted or signalled.
func runMount(brick, mnt string, mo options.Mount, foreground bool, readyFD int) error {
	var ready *os.File
	if readyFD > 0 {
		ready = os.NewFile(uintptr(readyFD), "ready")
	}
	report := func(err error) error {
		if ready != nil {
			if err != nil {
				fmt.Fprintf(ready, "error %s\n", oneLine(err))
			} else {
				fmt.Fprintln(ready, "ready")
			}
			ready.Close()
			ready = nil
		}
		return err
	}
	// Validate before the logger creates anything in the brick.
	if _, _, err := fs.Validate(brick, mnt); err != nil {
		return report(err)
	}
	if err := checkMirrors(brick, mnt, mo); err != nil {
		return report(err)
	}
	log, err := newLogger(brick, mo, foreground)
	if err != nil {
		return report(err)
	}
	defer log.Sync()
	absBrick, _ := filepath.Abs(brick)
	// Signals are caught from before the kernel mount exists: a SIGTERM
	// sent as soon as the mount shows (by a test, or systemd stopping the
	// unit) unmounts cleanly instead of killing the daemon with the
	// journal unsealed. One that comes before the mount is ready is
	// handled once it is.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	srv, err := fs.Mount(fs.Config{
		Brick:           brick,
		Mountpoint:      mnt,
		Rollover:        mo.Rollover,
		Retention:       mo.Retention,
		EntryTimeout:    mo.EntryTimeout,
		AttrTimeout:     mo.AttrTimeout,
		NegativeTimeout: mo.NegativeTimeout,
		AllowOther:      mo.AllowOther,
		ReadOnly:        mo.ReadOnly,
		Debug:           mo.Debug,
		FsName:          firstNonEmpty(mo.FsName, absBrick),
		Logger:          log,
	})
	if err != nil {
		log.Error("mount failed", zap.Error(err))
		return report(err)
	}
	log.Info("mounted", zap.String("brick", srv.Brick()), zap.String("mountpoint", mnt), zap.Int("pid", os.Getpid()))
	stopRepl, err := startReplication(srv, mo, log)
	if err != nil {
		log.Error("replication failed to start", zap.Error(err))
		srv.Unmount()
		srv.Close()
		return report(err)
	}
	defer stopRepl()
	if readyFD > 0 {
		// Detach from the parent's terminal now that errors have gone
		// through the pipe.
		if null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
			syscall.Dup2(int(null.Fd()), 0)
			syscall.Dup2(int(null.Fd()), 1)
			syscall.Dup2(int(null.Fd()), 2)
			null.Close()
		}
	}
	report(nil)
	sdNotify("READY=1")

	select {
	case s := <-sig:
		log.Info("signal: unmounting", zap.Stringer("signal", s))
		sdNotify("STOPPING=1")
		stopRepl()
		if err := srv.Unmount(); err != nil {
			log.Error("unmount", zap.Error(err))
			// Detach lazily so the journal can still be sealed.
			syscall.Unmount(mnt, syscall.MNT_DETACH)
			<-srv.Done()
			if cerr := srv.Close(); cerr != nil {
				return cerr
			}
			return err
		}
	case <-srv.Done():
		sdNotify("STOPPING=1")
		stopRepl()
	}
	if err := srv.Close(); err != nil {
		log.Error("close", zap.Error(err))
		return err
	}
	log.Info("unmounted cleanly", zap.String("mountpoint", mnt))
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// sdNotify tells systemd (Type=notify units) about readiness; a no-op
// outside systemd.
func sdNotify(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}

// checkMirrors rejects bad mirror= and mirror-adopt= options before
// anything changes: each must lead to a directory; none may be the brick,
// the mountpoint or another mirror, or lie inside or around one of them
// (by device and inode, whatever the spelling); and each must be empty, a
// mirror of this brick, or given as mirror-adopt=.
func checkMirrors(brick, mnt string, mo options.Mount) error {
	if len(mo.Mirrors) == 0 {
		return nil
	}
	absBrick, _ := filepath.Abs(brick)
	absMnt, _ := filepath.Abs(mnt)
	id, err := fs.ReadBrickID(absBrick)
	if err != nil {
		return err
	}
	dirs := []options.Dir{{What: "brick", Path: absBrick}, {What: "mountpoint", Path: absMnt}}
	for _, m := range mo.Mirrors {
		if err := replicator.CheckMirrorRoot(m); err != nil {
			return err
		}
		dirs = append(dirs, options.Dir{What: "mirror", Path: m})
	}
	if err := options.CheckSeparate(dirs); err != nil {
		return err
	}
	for _, m := range mo.Mirrors {
		if err := replicator.CheckMirrorPath(m, id, mo.Adopting(m)); err != nil {
			return err
		}
	}
	return nil
}

// adoptMirrors makes each mirror-adopt= directory a mirror of the brick,
// after listing what its first crawl will remove; one that is a mirror of
// this brick already is left as it is.
func adoptMirrors(srv *fs.Server, mo options.Mount, log *zap.Logger) error {
	id, _, _ := srv.BrickInfo()
	for _, dir := range mo.Adopt {
		rep, err := replicator.NewMirror(dir).AdoptCopy(srv.Brick(), id)
		if err != nil {
			return err
		}
		if !rep.Adopted {
			log.Info("mirror-adopt: already a mirror of this brick", zap.String("mirror", dir))
			continue
		}
		log.Warn("mirror-adopt: the first crawl removes what the brick does not have", zap.String("mirror", dir),
			zap.Int("entries", rep.Removed), zap.String("list", rep.List))
	}
	return nil
}

// startReplication starts a worker per target and the control socket;
// the returned stop (safe to call twice) ends both.
func startReplication(srv *fs.Server, mo options.Mount, log *zap.Logger) (func(), error) {
	if err := adoptMirrors(srv, mo, log); err != nil {
		return nil, err
	}
	id, gx, xx := srv.BrickInfo()
	var targets []target.Target
	for _, m := range mo.Mirrors {
		t, err := targetKinds().New(m)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	mgr, err := replicator.Start(replicator.Config{
		Brick: srv.Brick(), BrickID: id, GFIDXattr: gx, XtimeXattr: xx,
		Journal: srv.Journal(), Targets: targets,
		SyncJobs: mo.SyncJobs, BatchSize: mo.BatchSize, IgnoreDeletes: mo.IgnoreDeletes,
		Retention: mo.Retention, Rollover: mo.Rollover, VerifyInterval: mo.VerifyInterval, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	ctl, err := replicator.ServeControl(replicator.ControlSocket(srv.Brick()), mgr, log)
	if err != nil {
		mgr.Stop()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			ctl.Close()
			mgr.Stop()
		})
	}, nil
}

// startCPUProfile writes a CPU profile to path (none when path is "")
// until the returned function is called.
func startCPUProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
