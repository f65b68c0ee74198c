package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/replfs/replfs/internal/exitcode"
	"github.com/replfs/replfs/internal/mountinfo"
	"github.com/replfs/replfs/journal"
)

func newJournalCmd() *cobra.Command {
	c := &cobra.Command{Use: "journal", Short: "read a brick's journal"}
	var from uint64
	var asJSON bool
	dump := &cobra.Command{
		Use:   "dump BRICK|MOUNTPOINT",
		Short: "print every journal record, one per line, in order",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return exitcode.UsageError{Err: fmt.Errorf("journal dump needs BRICK")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			brick, err := brickOf(args[0])
			if err != nil {
				return err
			}
			w := bufio.NewWriterSize(os.Stdout, 1<<16)
			if err := journal.Dump(w, filepath.Join(brick, ".replfs", "journal"), from, asJSON); err != nil {
				w.Flush()
				return err
			}
			return w.Flush()
		},
	}
	dump.Flags().Uint64Var(&from, "from", 0, "start at this sequence number")
	dump.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	c.AddCommand(dump)
	return c
}

// brickOf accepts a brick or a replfs mountpoint and returns the brick.
func brickOf(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if mounts, err := mountinfo.Replfs(); err == nil {
		for _, m := range mounts {
			if m.Mountpoint == abs {
				if b := m.Brick(); b != "" {
					return b, nil
				}
				return "", fmt.Errorf("%s: cannot tell the brick of this replfs mount", p)
			}
		}
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("%s does not exist", p)
	}
	if fi, err := os.Stat(filepath.Join(abs, ".replfs", "journal")); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%s is not a replfs brick (no .replfs/journal)", p)
	}
	return abs, nil
}
