package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	rfs "github.com/replfs/replfs/fs"
	"github.com/replfs/replfs/internal/exitcode"
	"github.com/replfs/replfs/internal/target"
	"github.com/replfs/replfs/replicator"
)

// Exit codes of verify and repair.
const (
	verifyInSync = 0
	verifyDiffer = 1
	verifyError  = 2
)

func verifyErr(format string, a ...any) error {
	return exitcode.Coded{Code: verifyError, Err: fmt.Errorf(format, a...)}
}

// openBrick maps a brick or mount path to the brick it names.
func openBrick(arg string) (*rfs.Brick, error) {
	if _, err := os.Stat(arg); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, verifyErr("%s does not exist", arg)
		}
		return nil, verifyErr("%s: %v", arg, err)
	}
	brick, rel, err := locate(arg)
	if err != nil {
		return nil, verifyErr("%s is not a replfs brick or mount (no .replfs/brick.json)", arg)
	}
	if rel != "." && rel != "" {
		return nil, verifyErr("%s is inside the brick %s: give the brick or the mountpoint", arg, brick)
	}
	b, err := rfs.ReadBrick(brick)
	if err != nil {
		return nil, exitcode.Coded{Code: verifyError, Err: err}
	}
	return b, nil
}

func brickRef(b *rfs.Brick) replicator.BrickRef {
	return replicator.BrickRef{Root: b.Path, ID: b.Info.ID, GFIDXattr: b.GFIDXattr, XtimeXattr: b.XtimeXattr}
}

// attachTarget opens TARGET read-only as a target of brick b.
func attachTarget(ctx context.Context, b *rfs.Brick, arg string) (target.Target, error) {
	t, err := targetKinds().New(arg)
	if err != nil {
		return nil, verifyErr("%v", err)
	}
	if err := t.Attach(ctx, b.Info.ID); err != nil {
		return nil, exitcode.Coded{Code: verifyError, Err: err}
	}
	return t, nil
}

// daemonTargets returns the targets of the running mount of brick (nil
// when it is not mounted).
func daemonTargets(brick string) ([]replicator.TargetStatus, bool, error) {
	resp, err := replicator.Request(brick, replicator.ControlRequest{Op: replicator.OpStatus}, controlTimeout)
	if err != nil {
		var nd *replicator.NoDaemonError
		if errors.As(err, &nd) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return resp.Status, true, nil
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newVerifyCmd() *cobra.Command {
	var (
		checksum, all, quiet bool
		report, cpuprofile   string
		workers              int
	)
	c := &cobra.Command{
		Use:   "verify BRICK TARGET... | verify MOUNT --all-targets",
		Short: "prove that targets equal their brick: report every difference",
		Long: `Walk the brick and each target side by side and report every difference:
missing, extra, type, gfid, size, mode, owner, mtime, xattrs, symlink,
hardlink, content (HighwayHash-256; compared for every file with --checksum,
otherwise only for files of equal size whose mtimes differ), and changed
(an entry the live brick changed during the walk that still differed when
re-checked at the end). Nothing is changed.

BRICK is the brick directory or the mountpoint of its mount. TARGET is a
directory mirror of that brick. --all-targets verifies every target of the
running mount.

Exit status: 0 in sync, 1 differences found, 2 error (bad arguments, a target
that is not a mirror of the brick, unreadable entries: those are listed and
the walk goes on).`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 || !all && len(args) < 2 || all && len(args) != 1 {
				return exitcode.UsageError{Err: errors.New("usage: replfs verify BRICK TARGET... [--checksum] [--json FILE] | replfs verify MOUNT --all-targets")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			stop, err := startCPUProfile(cpuprofile)
			if err != nil {
				return err
			}
			defer stop()
			b, err := openBrick(args[0])
			if err != nil {
				return err
			}
			targets := args[1:]
			if all {
				st, running, err := daemonTargets(b.Path)
				if err != nil {
					return verifyErr("%v", err)
				}
				if !running {
					return verifyErr("--all-targets: %s is not mounted (name the targets instead)", args[0])
				}
				for _, s := range st {
					targets = append(targets, s.Target)
				}
				if len(targets) == 0 {
					return verifyErr("the mount of %s has no targets", args[0])
				}
			}
			var mirrors []target.Target
			for _, t := range targets {
				m, err := attachTarget(context.Background(), b, t)
				if err != nil {
					return err
				}
				mirrors = append(mirrors, m)
			}
			rep, out, err := openReport(c, report, b.Path, checksum)
			if err != nil {
				return err
			}
			if rep != nil {
				defer rep.abort()
			}
			ctx, stop := signalContext()
			defer stop()
			code := verifyInSync
			for _, m := range mirrors {
				r := verifyOne(ctx, b, m, replicator.VerifyOptions{Checksum: checksum, Workers: workers}, rep, quiet)
				if ctx.Err() != nil {
					return verifyErr("verify of %s interrupted", m.Name())
				}
				if r.err != nil {
					return exitcode.Coded{Code: verifyError, Err: r.err}
				}
				printVerify(out, m.Name(), r)
				switch {
				case r.sum.Errors > 0:
					code = verifyError
				case r.sum.Differences > 0 && code == verifyInSync:
					code = verifyDiffer
				}
			}
			if rep != nil {
				if err := rep.close(); err != nil {
					return verifyErr("report %s: %v", report, err)
				}
			}
			if code != verifyInSync {
				return exitcode.Status(code)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&checksum, "checksum", false, "compare the content of every regular file (HighwayHash-256)")
	c.Flags().BoolVar(&all, "all-targets", false, "verify every target of the running mount")
	c.Flags().StringVar(&report, "json", "", "write a JSON report with every difference to `FILE` (- for stdout)")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress display")
	c.Flags().IntVar(&workers, "workers", 0, "parallel walkers and hashers (default 2 per CPU, at least 4)")
	c.Flags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile")
	c.Flags().MarkHidden("cpuprofile")
	return c
}

type verifyRun struct {
	sum      replicator.VerifySummary
	first    []replicator.Difference // the first few, by path
	errs     []replicator.VerifyError
	took     time.Duration
	err      error
	inSync   bool
	finished time.Time
}

const firstShown = 20

// verifyOne verifies one target, feeding the report as it goes.
func verifyOne(ctx context.Context, b *rfs.Brick, t target.Target, opt replicator.VerifyOptions, rep *reportWriter, quiet bool) verifyRun {
	var r verifyRun
	started := time.Now()
	if rep != nil {
		rep.beginTarget(t.Name(), started)
	}
	opt.OnDiff = func(d replicator.Difference) {
		if rep != nil {
			rep.diff(d)
		}
		r.first = keepFirst(r.first, d)
	}
	opt.OnError = func(e replicator.VerifyError) {
		if len(r.errs) < 10000 {
			r.errs = append(r.errs, e)
		}
	}
	v := replicator.NewVerifier(brickRef(b), t, opt)
	p := startProgress(quiet, t.Name(), b.Path, opt.Checksum, v.Progress)
	r.sum, r.err = v.Run(ctx)
	p.stop()
	r.took = time.Since(started)
	r.finished = time.Now()
	r.inSync = r.err == nil && r.sum.Differences == 0 && r.sum.Errors == 0
	if rep != nil {
		rep.endTarget(r)
	}
	return r
}

// keepFirst keeps the firstShown differences with the smallest paths.
func keepFirst(list []replicator.Difference, d replicator.Difference) []replicator.Difference {
	i := sort.Search(len(list), func(i int) bool {
		return list[i].Path > d.Path || list[i].Path == d.Path && list[i].Kind > d.Kind
	})
	if i >= firstShown {
		return list
	}
	list = slices.Insert(list, i, d)
	if len(list) > firstShown {
		list = list[:firstShown]
	}
	return list
}

func printVerify(w io.Writer, target string, r verifyRun) {
	s := r.sum
	stats := fmt.Sprintf("%d entries, %d files, %s hashed, %s", s.Entries, s.Files,
		humanBytes(uint64(s.BytesHashed)), r.took.Round(time.Millisecond))
	switch {
	case r.inSync:
		fmt.Fprintf(w, "%s: in sync (%s)\n", target, stats)
	case s.Differences == 0:
		fmt.Fprintf(w, "%s: no differences, %d unreadable (%s)\n", target, s.Errors, stats)
	default:
		fmt.Fprintf(w, "%s: %d differences (%s)\n", target, s.Differences, stats)
	}
	if s.Differences > 0 {
		kinds := make([]string, 0, len(s.ByKind))
		for k := range s.ByKind {
			kinds = append(kinds, string(k))
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			fmt.Fprintf(w, "  %-9s %d\n", k, s.ByKind[replicator.DiffKind(k)])
		}
		fmt.Fprintf(w, "  first differences:\n")
		for _, d := range r.first {
			fmt.Fprintf(w, "    %-9s %s%s\n", d.Kind, d.Path, values(d))
		}
		if n := s.Differences - int64(len(r.first)); n > 0 {
			fmt.Fprintf(w, "    ... and %d more (--json FILE lists all)\n", n)
		}
	}
	if s.Errors > 0 {
		fmt.Fprintf(w, "  %d entries could not be read:\n", s.Errors)
		for i, e := range r.errs {
			if i == 10 {
				fmt.Fprintf(w, "    ... and %d more\n", s.Errors-10)
				break
			}
			fmt.Fprintf(w, "    %s: %s\n", e.Path, e.Err)
		}
	}
}

func values(d replicator.Difference) string {
	switch {
	case d.Brick != "" && d.Target != "":
		return fmt.Sprintf("  (brick %s, target %s)", d.Brick, d.Target)
	case d.Brick != "":
		return fmt.Sprintf("  (brick: %s)", d.Brick)
	case d.Target != "":
		return fmt.Sprintf("  (target: %s)", d.Target)
	}
	return ""
}

// reportWriter streams the JSON report, so that a report of millions of
// differences needs no memory: to FILE.tmp, renamed to FILE when complete.
type reportWriter struct {
	path, tmp string
	f         *os.File
	w         *bufio.Writer
	targets   int
	diffs     int
	err       error
}

// openReport starts the --json report at path (none when path is "") and
// returns where the human summary goes: stderr when the report takes
// stdout.
func openReport(c *cobra.Command, path, brick string, checksum bool) (*reportWriter, io.Writer, error) {
	out := c.OutOrStdout()
	if path == "" {
		return nil, out, nil
	}
	rep, err := newReport(path, out, brick, checksum)
	if err != nil {
		return nil, nil, verifyErr("report %s: %v", path, err)
	}
	if path == "-" {
		out = c.ErrOrStderr()
	}
	return rep, out, nil
}

func newReport(path string, stdout io.Writer, brick string, checksum bool) (*reportWriter, error) {
	r := &reportWriter{path: path}
	if path == "-" {
		r.w = bufio.NewWriter(stdout)
	} else {
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			return nil, errors.New("is a directory")
		}
		r.tmp = path + ".tmp"
		f, err := os.OpenFile(r.tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, err
		}
		r.f, r.w = f, bufio.NewWriterSize(f, 1<<16)
	}
	r.printf(`{"format":1,"brick":%s,"checksum":%t,"targets":[`, jsonString(brick), checksum)
	return r, nil
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (r *reportWriter) printf(format string, a ...any) {
	if r.err == nil {
		_, r.err = fmt.Fprintf(r.w, format, a...)
	}
}

func (r *reportWriter) beginTarget(name string, started time.Time) {
	if r.targets > 0 {
		r.printf(",")
	}
	r.targets++
	r.diffs = 0
	r.printf("\n{\"target\":%s,\"started\":%s,\"differences\":[", jsonString(name),
		jsonString(started.UTC().Format(time.RFC3339Nano)))
}

func (r *reportWriter) diff(d replicator.Difference) {
	b, _ := json.Marshal(d)
	if r.diffs > 0 {
		r.printf(",")
	}
	r.diffs++
	r.printf("\n%s", b)
}

func (r *reportWriter) endTarget(v verifyRun) {
	errs := v.errs
	if errs == nil {
		errs = []replicator.VerifyError{}
	}
	e, _ := json.Marshal(errs)
	s, _ := json.Marshal(v.sum)
	msg := ""
	if v.err != nil {
		msg = fmt.Sprintf(",\"error\":%s", jsonString(v.err.Error()))
	}
	r.printf("],\n\"errors\":%s,\"finished\":%s,\"in_sync\":%t,\"summary\":%s%s}", e,
		jsonString(v.finished.UTC().Format(time.RFC3339Nano)), v.inSync, s, msg)
}

func (r *reportWriter) close() error {
	r.printf("\n]}\n")
	if r.err == nil {
		r.err = r.w.Flush()
	}
	if r.f != nil {
		if r.err == nil {
			r.err = r.f.Sync()
		}
		if err := r.f.Close(); r.err == nil {
			r.err = err
		}
		r.f = nil
		if r.err == nil {
			r.err = os.Rename(r.tmp, r.path)
		}
		if r.err != nil {
			os.Remove(r.tmp)
		}
	}
	return r.err
}

// abort removes an unfinished report (after close, nothing to do).
func (r *reportWriter) abort() {
	if r.f != nil {
		r.f.Close()
		os.Remove(r.tmp)
	}
}

func newRepairCmd() *cobra.Command {
	var (
		checksum, keepExtra, dryRun, resume, quiet bool
		jobs                                       int
		report                                     string
	)
	c := &cobra.Command{
		Use:   "repair BRICK TARGET",
		Short: "make a target equal to its brick, fixing every difference verify finds",
		Long: `Walk the brick and the target as verify does, fix each difference with the
smallest change from the brick (create, remove, copy content, set owner, mode,
times or xattrs, re-link hard links), then verify again. The brick is never
changed. --dry-run lists the actions and changes nothing. --keep-extra leaves
what the target has and the brick does not.

Fixes are checkpointed in TARGET/.replfs/repair/: an interrupted repair
continues with --resume. While the brick is mounted and replicating to
TARGET, pause that target first (replfs pause MOUNT TARGET).

Exit status: 0 the target ends in sync, 1 differences remain (dry run: there
is something to do), 2 error.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 2 {
				return exitcode.UsageError{Err: errors.New("usage: replfs repair BRICK TARGET [--dry-run] [--keep-extra] [--checksum] [--resume]")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			b, err := openBrick(args[0])
			if err != nil {
				return err
			}
			m, err := attachTarget(context.Background(), b, args[1])
			if err != nil {
				return err
			}
			if !dryRun {
				if err := checkNotReplicating(b.Path, m.Name()); err != nil {
					return err
				}
				if err := m.Open(context.Background(), b.Info.ID); err != nil {
					return exitcode.Coded{Code: verifyError, Err: err}
				}
				if err := m.Check(context.Background()); err != nil {
					return exitcode.Coded{Code: verifyError, Err: err}
				}
			}
			rep, out, err := openReport(c, report, b.Path, checksum)
			if err != nil {
				return err
			}
			if rep != nil {
				defer rep.abort()
			}
			ctx, stop := signalContext()
			defer stop()
			var p *progress
			opt := replicator.RepairOptions{Checksum: checksum, KeepExtra: keepExtra, DryRun: dryRun, Resume: resume,
				Jobs: jobs, StateDir: filepath.Join(m.Name(), ".replfs", "repair"),
				OnWalk: func(pass int, v *replicator.Verifier) {
					p.stop()
					p = startProgress(quiet, fmt.Sprintf("%s (walk %d)", m.Name(), pass), b.Path, checksum, v.Progress)
				},
				OnApply: func(pass int, done, total int64) { p.count(fmt.Sprintf("%s (fixes %d)", m.Name(), pass), done, total) },
			}
			if dryRun {
				opt.OnAction = func(action, path string) { fmt.Fprintf(out, "%s %s\n", action, path) }
			}
			if resume {
				if _, ok, err := replicator.ReadRepairState(opt.StateDir); err != nil {
					return exitcode.Coded{Code: verifyError, Err: err}
				} else if !ok {
					return verifyErr("%s: no interrupted repair to resume (run replfs repair without --resume)", m.Name())
				}
			}
			start := time.Now()
			res, err := replicator.Repair(ctx, brickRef(b), m, opt)
			p.stop()
			if err != nil {
				if ctx.Err() != nil {
					return verifyErr("repair of %s interrupted: %d fixes made; continue with --resume", m.Name(), res.Applied)
				}
				return exitcode.Coded{Code: verifyError, Err: err}
			}
			printRepair(out, m.Name(), res, dryRun, time.Since(start))
			if rep != nil {
				// The report is a verify of the target as the repair left it.
				r := verifyOne(ctx, b, m, replicator.VerifyOptions{Checksum: checksum}, rep, quiet)
				if r.err != nil {
					return exitcode.Coded{Code: verifyError, Err: r.err}
				}
				if err := rep.close(); err != nil {
					return verifyErr("report %s: %v", report, err)
				}
			}
			switch {
			case len(res.Errors) > 0 || len(res.Failed) > 0:
				return exitcode.Status(verifyError)
			case !res.InSync:
				return exitcode.Status(verifyDiffer)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&checksum, "checksum", false, "compare (and repair) the content of every regular file")
	c.Flags().BoolVar(&keepExtra, "keep-extra", false, "do not remove what the brick does not have")
	c.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "list the actions, change nothing")
	c.Flags().BoolVar(&resume, "resume", false, "continue an interrupted repair from its checkpoint")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress display")
	c.Flags().IntVar(&jobs, "jobs", 3, "parallel copies")
	c.Flags().StringVar(&report, "json", "", "write a JSON report (as verify's) of what differs after the repair to `FILE`")
	return c
}

// checkNotReplicating refuses a repair racing the mount's own worker.
func checkNotReplicating(brick, target string) error {
	st, running, err := daemonTargets(brick)
	if err != nil {
		return verifyErr("%v", err)
	}
	if !running {
		return nil
	}
	for _, s := range st {
		if sameDir(s.Target, target) && s.State != replicator.StatePaused {
			return verifyErr("the mount of %s is replicating to %s: pause it first (replfs pause %s %s), then resume it after the repair",
				brick, target, brick, target)
		}
	}
	return nil
}

func sameDir(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

func printRepair(w io.Writer, target string, res replicator.RepairResult, dryRun bool, took time.Duration) {
	if dryRun {
		if res.Found == 0 {
			fmt.Fprintf(w, "%s: in sync, nothing to do\n", target)
		} else {
			fmt.Fprintf(w, "%s: %d actions (dry run, nothing changed)\n", target, res.Found)
		}
	} else {
		state := "in sync"
		if n := res.Remaining.ByKind[replicator.DiffExtra]; res.InSync && n > 0 {
			state = fmt.Sprintf("in sync apart from %d extra entries kept (--keep-extra)", n)
		}
		if !res.InSync {
			state = fmt.Sprintf("%d differences remain", res.Remaining.Differences)
		}
		fmt.Fprintf(w, "%s: %d fixes made in %d passes, %s (%s)\n", target, res.Applied, res.Passes, state,
			took.Round(time.Millisecond))
	}
	for _, f := range res.Failed {
		fmt.Fprintf(w, "  failed: %s: %s\n", f.Path, f.Err)
	}
	for _, e := range res.Errors {
		fmt.Fprintf(w, "  unreadable: %s: %s\n", e.Path, e.Err)
	}
	if !dryRun && !res.InSync {
		fmt.Fprintf(w, "  replfs verify lists what remains\n")
	}
}
