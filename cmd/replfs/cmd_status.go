package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/replfs/replfs/internal/exitcode"
	"github.com/replfs/replfs/replicator"
)

const controlTimeout = 10 * time.Second

func argsN(n int, usage string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return exitcode.UsageError{Err: fmt.Errorf("usage: replfs %s", usage)}
		}
		return nil
	}
}

func newStatusCmd() *cobra.Command {
	var (
		asJSON  bool
		wait    bool
		timeout time.Duration
	)
	c := &cobra.Command{
		Use:   "status PATH [--json] [--wait-checkpoint [--timeout DUR]]",
		Short: "show each target's replication state (PATH: the mountpoint or the brick)",
		Args:  argsN(1, "status PATH"),
		RunE: func(c *cobra.Command, args []string) error {
			brick, err := brickOf(args[0])
			if err != nil {
				return err
			}
			get := func() ([]replicator.TargetStatus, error) {
				resp, err := replicator.Request(brick, replicator.ControlRequest{Op: "status"}, controlTimeout)
				return resp.Status, err
			}
			st, err := get()
			if err != nil {
				return err
			}
			if wait {
				deadline := time.Now().Add(timeout)
				for {
					var pending []string
					for _, s := range st {
						if s.Checkpoint.IsZero() {
							return fmt.Errorf("no checkpoint set (run replfs checkpoint %s)", args[0])
						}
						if !s.CheckpointCompleted {
							pending = append(pending, s.Target)
						}
					}
					if len(pending) == 0 {
						break
					}
					if timeout > 0 && time.Now().After(deadline) {
						return fmt.Errorf("checkpoint not completed after %s by: %s", timeout, strings.Join(pending, ", "))
					}
					time.Sleep(200 * time.Millisecond)
					if st, err = get(); err != nil {
						return err
					}
				}
			}
			if asJSON {
				if st == nil {
					st = []replicator.TargetStatus{}
				}
				e := json.NewEncoder(c.OutOrStdout())
				e.SetIndent("", "  ")
				return e.Encode(st)
			}
			printStatus(c.OutOrStdout(), st)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&wait, "wait-checkpoint", false, "wait until every target has completed the last checkpoint")
	c.Flags().DurationVar(&timeout, "timeout", 0, "with --wait-checkpoint: give up (exit 1) after this long (0: wait forever)")
	return c
}

func printStatus(w io.Writer, st []replicator.TargetStatus) {
	if len(st) == 0 {
		fmt.Fprintln(w, "no targets configured")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tKIND\tSTATE\tCRAWL\tLAST SYNCED\tLAG\tPENDING E/D/M\tBEHIND\tFAILURES\tFILES\tBYTES\tCHECKPOINT")
	for _, s := range st {
		synced, lag := "-", "-"
		if !s.LastSynced.IsZero() {
			synced = s.LastSynced.Local().Format("2006-01-02 15:04:05")
			lag = s.Lag.Round(100 * time.Millisecond).String()
		}
		cp := "-"
		if !s.Checkpoint.IsZero() {
			if s.CheckpointCompleted {
				cp = "completed " + s.CheckpointDone.Local().Format("15:04:05")
			} else {
				cp = "pending since " + s.Checkpoint.Local().Format("15:04:05")
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d/%d/%d\t%d\t%d\t%d\t%s\t%s\n", s.Target, s.Kind, s.State, s.Crawl,
			synced, lag, s.PendingEntry, s.PendingData, s.PendingMeta, s.Behind, s.Failures, s.FilesTransferred,
			humanBytes(s.BytesTransferred), cp)
	}
	tw.Flush()
	for _, s := range st {
		if s.LastError != "" {
			fmt.Fprintf(w, "%s: last error (%s): %s\n", s.Target, s.LastErrorTime.Local().Format("15:04:05"), s.LastError)
		}
	}
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func newCheckpointCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint PATH",
		Short: "mark now: status shows when every target has everything written before it",
		Args:  argsN(1, "checkpoint PATH"),
		RunE: func(c *cobra.Command, args []string) error {
			brick, err := brickOf(args[0])
			if err != nil {
				return err
			}
			resp, err := replicator.Request(brick, replicator.ControlRequest{Op: "checkpoint"}, controlTimeout)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "checkpoint set at %s; see replfs status %s --wait-checkpoint\n",
				resp.Checkpoint.Local().Format(time.RFC3339), args[0])
			return nil
		},
	}
}

func newPauseCmd(pause bool) *cobra.Command {
	op, what := "pause", "stop replicating to TARGET (its journal segments are kept)"
	if !pause {
		op, what = "resume", "resume replicating to TARGET"
	}
	return &cobra.Command{
		Use:   op + " PATH TARGET",
		Short: what,
		Args:  argsN(2, op+" PATH TARGET"),
		RunE: func(c *cobra.Command, args []string) error {
			brick, err := brickOf(args[0])
			if err != nil {
				return err
			}
			target := args[1]
			if !strings.Contains(target, "://") {
				if abs, err := filepath.Abs(target); err == nil {
					target = abs
				}
			}
			_, err = replicator.Request(brick, replicator.ControlRequest{Op: op, Target: target}, controlTimeout)
			return err
		},
	}
}
