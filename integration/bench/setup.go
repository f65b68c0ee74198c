package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// setup is one of the configurations compared side by side.
type setup struct {
	name string
	// start makes a fresh instance under dir, which it owns and removes
	// when the instance stops.
	start func(ctx context.Context, dir string) (*instance, error)
}

// instance is one started setup: the directory the workloads run in and
// how to take it down again.
type instance struct {
	mu       sync.Mutex
	stopped  bool
	root     string
	pid      int // the FUSE daemon, 0 for the bare directory
	teardown func() error
}

// stop unmounts and removes the instance once; it is safe to call from
// the signal path while the instance is still starting.
func (in *instance) stop() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped || in.teardown == nil {
		return nil
	}
	in.stopped = true
	return in.teardown()
}

// cleaner holds the stop of every instance started, so that an error or
// a signal anywhere still unmounts everything.
type cleaner struct {
	mu     sync.Mutex
	closed bool
	stops  []func() error
}

// add registers stop; it reports false once the cleaner has run, when the
// caller must stop what it started itself.
func (c *cleaner) add(stop func() error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.stops = append(c.stops, stop)
	return true
}

func (c *cleaner) run() error {
	c.mu.Lock()
	c.closed = true
	stops := c.stops
	c.stops = nil
	c.mu.Unlock()
	var errs []error
	for i := len(stops) - 1; i >= 0; i-- {
		errs = append(errs, stops[i]())
	}
	return errors.Join(errs...)
}

// newInstance registers an instance whose teardown is set by the caller
// while it holds in.mu, so that a concurrent stop waits for the start.
func (b *bench) newInstance() (*instance, error) {
	in := &instance{}
	in.mu.Lock()
	if !b.clean.add(in.stop) {
		in.mu.Unlock()
		return nil, errors.New("shutting down")
	}
	return in, nil
}

func (b *bench) setups() []setup {
	return []setup{
		{name: "bare", start: b.startBare},
		{name: "loopback", start: b.startLoopback},
		{name: "replfs", start: b.startReplfs},
	}
}

func (b *bench) startBare(ctx context.Context, dir string) (*instance, error) {
	in, err := b.newInstance()
	if err != nil {
		return nil, err
	}
	defer in.mu.Unlock()
	in.teardown = func() error { return removeUnmounted(dir) }
	in.root = filepath.Join(dir, "root")
	return in, os.MkdirAll(in.root, 0o755)
}

func (b *bench) startLoopback(ctx context.Context, dir string) (*instance, error) {
	in, err := b.newInstance()
	if err != nil {
		return nil, err
	}
	defer in.mu.Unlock()
	in.teardown = func() error { return removeUnmounted(dir) }
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	if err := mkdirs(backing, mnt); err != nil {
		return in, err
	}
	logPath := filepath.Join(b.logDir, filepath.Base(dir)+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return in, err
	}
	defer logf.Close()
	cmd := exec.Command(b.cfg.loopback, mnt, backing)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a terminal's ^C goes to us, and we unmount.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return in, fmt.Errorf("start loopback: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	in.pid = cmd.Process.Pid
	in.teardown = func() error {
		return errors.Join(stopLoopback(mnt, cmd.Process, exited), removeUnmounted(dir))
	}
	if err := waitMounted(ctx, mnt, exited, 15*time.Second); err != nil {
		return in, fmt.Errorf("loopback: %w%s", err, tail(logPath))
	}
	in.root = mnt
	return in, nil
}

func stopLoopback(mnt string, p *os.Process, exited <-chan struct{}) error {
	var err error
	if _, ok := mountAt(mnt); ok {
		err = unmount(mnt, func() ([]byte, error) { return exec.Command("umount", mnt).CombinedOutput() })
	}
	select {
	case <-exited:
		return err
	case <-time.After(30 * time.Second):
	}
	// Our own child: it is fine to signal it by pid.
	p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		p.Kill()
		<-exited
	}
	return errors.Join(err, fmt.Errorf("loopback daemon (pid %d) did not exit after unmount", p.Pid))
}

func (b *bench) startReplfs(ctx context.Context, dir string) (*instance, error) {
	in, err := b.newInstance()
	if err != nil {
		return nil, err
	}
	defer in.mu.Unlock()
	in.teardown = func() error { return removeUnmounted(dir) }
	brick, mnt := filepath.Join(dir, "brick"), filepath.Join(dir, "mnt")
	if err := mkdirs(brick, mnt); err != nil {
		return in, err
	}
	logPath := filepath.Join(brick, ".replfs", "log", "replfs.log")
	in.teardown = func() error {
		err := b.stopReplfs(brick, mnt)
		copyFile(logPath, filepath.Join(b.logDir, filepath.Base(dir)+".log"))
		return errors.Join(err, removeUnmounted(dir))
	}
	if err := ctx.Err(); err != nil {
		return in, err
	}
	// Not CommandContext: a killed "replfs mount" would leave its daemon
	// mounting behind our back; the command returns once the mount is
	// ready or has failed.
	out, err := exec.Command(b.cfg.replfs, "mount", brick, mnt).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			msg = "no output"
		}
		return in, fmt.Errorf("replfs mount: %v: %s%s", err, msg, tail(logPath))
	}
	if err := waitMounted(ctx, mnt, nil, 5*time.Second); err != nil {
		return in, fmt.Errorf("replfs mount returned: %w", err)
	}
	in.pid = daemonPID(brick)
	in.root = mnt
	return in, nil
}

// stopReplfs unmounts with "replfs umount", which waits for the daemon to
// seal its journal; a busy mount is retried, then detached.
func (b *bench) stopReplfs(brick, mnt string) error {
	m, ok := mountAt(mnt)
	if !ok {
		return nil
	}
	pid := daemonPID(brick)
	err := unmount(mnt, func() ([]byte, error) {
		return exec.Command(b.cfg.replfs, "umount", mnt).CombinedOutput()
	})
	if err == nil || pid <= 0 {
		return err
	}
	if waitGone(pid, brick, 60*time.Second) {
		return err
	}
	abortConnection(m)
	if !waitGone(pid, brick, 5*time.Second) {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	return err
}

// unmount runs do, retrying for a while when the mount is busy (a killed
// workload's files may still be closing), then detaches it lazily.
func unmount(mnt string, do func() ([]byte, error)) error {
	var out []byte
	var err error
	for i := 0; i < 50; i++ {
		out, err = do()
		if err == nil {
			return nil
		}
		if _, ok := mountAt(mnt); !ok {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	derr := syscall.Unmount(mnt, syscall.MNT_DETACH)
	return fmt.Errorf("unmount %s: %v: %s (detached lazily: %v)", mnt, err, strings.TrimSpace(string(out)), derr)
}

// daemonPID reads the pid the replfs daemon writes into its brick lock.
func daemonPID(brick string) int {
	data, err := os.ReadFile(filepath.Join(brick, ".replfs", "run", "lock"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// waitGone waits until pid has exited or is no longer the daemon of brick
// (pid reuse).
func waitGone(pid int, brick string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(cmdline), brick) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeUnmounted deletes dir, unless something is still mounted in it:
// removing through a live mount would be slow at best.
func removeUnmounted(dir string) error {
	if ms := mountsUnder(dir); len(ms) > 0 {
		return fmt.Errorf("not removing %s: still mounted: %s", dir, strings.Join(ms, ", "))
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

func mkdirs(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) {
	if data, err := os.ReadFile(from); err == nil {
		os.WriteFile(to, data, 0o644)
	}
}

// tail returns the end of a log file for an error message, or nothing
// when there is no log.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 2000 {
		f.Seek(-2000, io.SeekEnd)
	}
	data, _ := io.ReadAll(f)
	if s := strings.TrimSpace(string(data)); s != "" {
		return " (log " + path + ": " + s + ")"
	}
	return ""
}
