package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/replfs/replfs/fs"
	"github.com/replfs/replfs/internal/exitcode"
	"github.com/replfs/replfs/internal/mountinfo"
)

func newUmountCmd() *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:     "umount MOUNTPOINT",
		Aliases: []string{"unmount"},
		Short:   "unmount a replfs mount and wait until its daemon has sealed the journal",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return exitcode.UsageError{Err: fmt.Errorf("umount needs MOUNTPOINT")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			abs, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			mounts, err := mountinfo.Replfs()
			if err != nil {
				return err
			}
			brick := ""
			for _, m := range mounts {
				if m.Mountpoint == abs {
					brick = m.Brick()
				}
			}
			if brick == "" {
				return fmt.Errorf("%s is not a replfs mount", args[0])
			}
			pid := fs.LockHolder(brick)
			if err := unmount(abs); err != nil {
				return err
			}
			if pid != 0 {
				return waitReleased(brick, pid, timeout)
			}
			return nil
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "how long to wait for the daemon to finish")
	return c
}

func unmount(mnt string) error {
	if os.Geteuid() == 0 {
		if err := syscall.Unmount(mnt, 0); err != nil {
			return fmt.Errorf("unmount %s: %w", mnt, err)
		}
		return nil
	}
	out, err := exec.Command("fusermount3", "-u", mnt).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fusermount3 -u %s: %v: %s", mnt, err, out)
	}
	return nil
}

// waitReleased waits until the daemon has released the brick, which it
// does after sealing the journal.
func waitReleased(brick string, pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if fs.LockHolder(brick) == 0 {
			return nil
		}
		if pid > 0 && syscall.Kill(pid, 0) == syscall.ESRCH {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("replfs daemon (pid %d) still running after %s", pid, timeout)
}
