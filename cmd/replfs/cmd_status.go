package main

import (
	"bytes"
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

// controlTimeout bounds one exchange with the daemon.
const controlTimeout = 10 * time.Second

// checkpointPoll is how often status --wait-checkpoint asks.
var checkpointPoll = 200 * time.Millisecond

func argsN(n int, usage string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return exitcode.UsageError{Err: fmt.Errorf("usage: replfs %s", usage)}
		}
		return nil
	}
}

// brickFor maps PATH (the mountpoint, the brick, or a path inside either)
// to the brick whose daemon answers for it.
func brickFor(p string) (string, error) {
	brick, _, err := locate(p)
	return brick, err
}

func request(brick string, req replicator.ControlRequest) (replicator.ControlResponse, error) {
	return replicator.Request(brick, req, controlTimeout)
}

func newStatusCmd() *cobra.Command {
	var (
		asJSON  bool
		wait    bool
		timeout time.Duration
	)
	const usage = "status PATH [--json] [--wait-checkpoint [--timeout DUR]]"
	c := &cobra.Command{
		Use:   "status PATH",
		Short: "show each target's replication state (PATH: the mountpoint or the brick)",
		Long: `Show each target's replication state (PATH: the mountpoint or the brick).

Columns: STATE Initializing/Active/Paused/Faulty/Stopped; CRAWL Changelog
(live), History (catching up from retained journal segments) or Hybrid (walk
of the brick); LAST-SYNCED the journal time up to which the target is
complete, and LAG how far that is behind now; PENDING(E/D/M) entry, data and
metadata records read but not yet applied; BEHIND journal records written
after the target's cursor; FAILURES entries not applied after retries; FILES
and BYTES transferred; CHECKPOINT the last checkpoint (replfs checkpoint),
completed or pending.

With --wait-checkpoint, wait until every target has completed the last
checkpoint (exit 1 when --timeout expires first).`,
		Args: argsN(1, usage),
		RunE: func(c *cobra.Command, args []string) error {
			if timeout < 0 {
				return exitcode.UsageError{Err: fmt.Errorf("--timeout %s: negative", timeout)}
			}
			if c.Flags().Changed("timeout") && !wait {
				return exitcode.UsageError{Err: fmt.Errorf("--timeout needs --wait-checkpoint")}
			}
			brick, err := brickFor(args[0])
			if err != nil {
				return err
			}
			var st []replicator.TargetStatus
			if wait {
				st, err = waitCheckpoint(brick, args[0], timeout)
			} else {
				var resp replicator.ControlResponse
				resp, err = request(brick, replicator.ControlRequest{Op: replicator.OpStatus})
				st = resp.Status
			}
			if err != nil {
				return err
			}
			if asJSON {
				if st == nil {
					st = []replicator.TargetStatus{}
				}
				e := json.NewEncoder(c.OutOrStdout())
				e.SetIndent("", "  ")
				return e.Encode(st)
			}
			printStatus(c.OutOrStdout(), st, time.Now())
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the status as a JSON array, one object per target")
	c.Flags().BoolVar(&wait, "wait-checkpoint", false, "wait until every target has completed the last checkpoint, then print the status")
	c.Flags().DurationVar(&timeout, "timeout", 0, "with --wait-checkpoint: give up (exit 1) after this long; 0 waits forever")
	return c
}

// waitCheckpoint polls until every target has completed the checkpoint in
// force and returns that status.
func waitCheckpoint(brick, path string, timeout time.Duration) ([]replicator.TargetStatus, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		rt := controlTimeout
		if !deadline.IsZero() {
			rt = max(min(rt, time.Until(deadline)), 100*time.Millisecond)
		}
		resp, err := replicator.Request(brick, replicator.ControlRequest{Op: replicator.OpStatus}, rt)
		if err != nil {
			return nil, err
		}
		var cp time.Time
		var pending []string
		for _, s := range resp.Status {
			if s.Checkpoint.After(cp) {
				cp = s.Checkpoint
			}
		}
		if cp.IsZero() && len(resp.Status) > 0 {
			return nil, fmt.Errorf("no checkpoint set (run replfs checkpoint %s)", path)
		}
		for _, s := range resp.Status {
			if !s.CheckpointCompleted || !s.Checkpoint.Equal(cp) {
				why := string(s.State)
				if s.State == replicator.StateFaulty && s.LastError != "" {
					why += ": " + s.LastError
				}
				pending = append(pending, fmt.Sprintf("%s (%s)", s.Target, why))
			}
		}
		if len(pending) == 0 {
			return resp.Status, nil
		}
		sleep := checkpointPoll
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return nil, fmt.Errorf("checkpoint of %s not completed within %s by %s",
					fmtTime(cp, time.Now()), timeout, strings.Join(pending, ", "))
			}
			sleep = min(sleep, left)
		}
		time.Sleep(sleep)
	}
}

// printStatus prints st as a table, with a "last error:" line under each
// target that has one.
func printStatus(w io.Writer, st []replicator.TargetStatus, now time.Time) {
	if len(st) == 0 {
		fmt.Fprintln(w, "no targets configured")
		return
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tKIND\tSTATE\tCRAWL\tLAST-SYNCED\tLAG\tPENDING(E/D/M)\tBEHIND\tFAILURES\tFILES\tBYTES\tCHECKPOINT\tVERIFIED")
	for _, s := range st {
		synced, lag := "-", "-"
		if !s.LastSynced.IsZero() {
			synced, lag = fmtTime(s.LastSynced, now), humanDuration(s.Lag)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d/%d/%d\t%d\t%d\t%d\t%s\t%s\t%s\n", s.Target, s.Kind, s.State, s.Crawl,
			synced, lag, s.PendingEntry, s.PendingData, s.PendingMeta, s.Behind, s.Failures, s.FilesTransferred,
			humanBytes(s.BytesTransferred), checkpointCell(s, now), verifiedCell(s.LastVerify, now))
	}
	tw.Flush()
	// tabwriter aligns only consecutive lines with cells: the error lines
	// go in afterwards, under their rows.
	lines := strings.SplitAfter(buf.String(), "\n")
	io.WriteString(w, lines[0])
	for i, s := range st {
		io.WriteString(w, lines[i+1])
		if s.LastError != "" {
			when := ""
			if !s.LastErrorTime.IsZero() {
				when = " (" + fmtTime(s.LastErrorTime, now) + ")"
			}
			fmt.Fprintf(w, "  last error%s: %s\n", when, oneLine(fmt.Errorf("%s", s.LastError)))
		}
	}
}

// verifiedCell sums up the last scheduled verify.
func verifiedCell(v *replicator.VerifyStatus, now time.Time) string {
	switch {
	case v == nil:
		return "-"
	case v.Error != "":
		return "error " + fmtTime(v.Time, now)
	case v.InSync:
		return "in sync " + fmtTime(v.Time, now)
	case v.Differences == 0:
		return fmt.Sprintf("%d unreadable %s", v.Errors, fmtTime(v.Time, now))
	}
	return fmt.Sprintf("%d differences %s", v.Differences, fmtTime(v.Time, now))
}

func checkpointCell(s replicator.TargetStatus, now time.Time) string {
	switch {
	case s.Checkpoint.IsZero():
		return "-"
	case s.CheckpointCompleted && !s.CheckpointDone.IsZero():
		return "completed " + fmtTime(s.CheckpointDone, now)
	case s.CheckpointCompleted:
		return "completed"
	default:
		return "pending since " + fmtTime(s.Checkpoint, now)
	}
}

// fmtTime formats t in local time: the time of day if it is today, else
// with the date (no spaces, so that columns split on blanks).
func fmtTime(t, now time.Time) string {
	t, now = t.Local(), now.Local()
	ty, tm, td := t.Date()
	if ny, nm, nd := now.Date(); ty == ny && tm == nm && td == nd {
		return t.Format("15:04:05")
	}
	return t.Format("2006-01-02T15:04:05")
}

// humanDuration: "850ms", "1.2s", "3m4s", "2h5m", "3d4h".
func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%ds", d/time.Minute, d%time.Minute/time.Second)
	case d < 48*time.Hour:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	default:
		d = d.Round(time.Hour)
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	}
}

// humanBytes: "512B", "1.5KiB", "3.0MiB".
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func newCheckpointCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint PATH",
		Short: "mark now: status shows when every target has everything written before it",
		Args:  argsN(1, "checkpoint PATH"),
		RunE: func(c *cobra.Command, args []string) error {
			brick, err := brickFor(args[0])
			if err != nil {
				return err
			}
			resp, err := request(brick, replicator.ControlRequest{Op: replicator.OpCheckpoint})
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
	op, what, done := replicator.OpPause, "stop replicating to TARGET (its journal segments are kept)", "paused"
	if !pause {
		op, what, done = replicator.OpResume, "resume replicating to a paused TARGET", "resumed"
	}
	return &cobra.Command{
		Use:   op + " PATH TARGET",
		Short: what,
		Args:  argsN(2, op+" PATH TARGET"),
		RunE: func(c *cobra.Command, args []string) error {
			brick, err := brickFor(args[0])
			if err != nil {
				return err
			}
			target, err := resolveTarget(brick, args[1])
			if err != nil {
				return err
			}
			if _, err := request(brick, replicator.ControlRequest{Op: op, Target: target}); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "%s %s\n", done, target)
			return nil
		},
	}
}

// resolveTarget returns the target name to send for what the user typed:
// a target exactly as status shows it, or a path of it (relative, or
// not clean). What matches nothing is sent as an absolute path, for the
// daemon to say which targets there are.
func resolveTarget(brick, arg string) (string, error) {
	resp, err := request(brick, replicator.ControlRequest{Op: replicator.OpStatus})
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return "", err
	}
	for _, cand := range []string{arg, abs} {
		for _, s := range resp.Status {
			if s.Target == cand {
				return cand, nil
			}
		}
	}
	return abs, nil
}
