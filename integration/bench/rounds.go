package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// benchState is what the workload goroutine reports.
type benchState struct {
	mu         sync.Mutex
	res        *results
	dropFailed bool
}

// stopGrace is how long a cancelled workload gets to return before the
// mounts are taken down under it.
const stopGrace = 10 * time.Second

// runAll runs the rounds in a goroutine so that a signal still leads to
// the cleanup when a workload is stuck in a call to a FUSE daemon that
// does not answer.
func (b *bench) runAll(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- b.runRounds(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done:
		if err == nil {
			return ctx.Err()
		}
		return err
	case <-time.After(stopGrace):
		return fmt.Errorf("%w: the running workload did not stop within %s", ctx.Err(), stopGrace)
	}
}

func (b *bench) runRounds(ctx context.Context) error {
	if err := b.prepare(ctx); err != nil {
		return err
	}
	setups := b.setups()
	for r := range b.cfg.rounds {
		var order []setup
		var names []string
		for i := range setups {
			s := setups[(i+r)%len(setups)]
			order = append(order, s)
			names = append(names, s.name)
		}
		b.state.mu.Lock()
		b.state.res.orders = append(b.state.res.orders, names)
		b.state.mu.Unlock()
		fmt.Fprintf(os.Stderr, "bench: round %d/%d: %s\n", r+1, b.cfg.rounds, strings.Join(names, ", "))
		for _, s := range order {
			if err := b.runSetup(ctx, r, s); err != nil {
				return err
			}
		}
	}
	return nil
}

// prepare finds the binaries and makes the tarball, once per run.
func (b *bench) prepare(ctx context.Context) error {
	if err := executable(b.cfg.replfs); err != nil {
		return fmt.Errorf("-replfs: %w", err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is needed for GOROOT and to build loopback: %w", err)
	}
	if b.cfg.loopback == "" {
		bin := filepath.Join(b.work, "bin", "loopback")
		out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin,
			"github.com/hanwen/go-fuse/v2/example/loopback").CombinedOutput()
		if err != nil {
			return fmt.Errorf("build go-fuse's example loopback: %v: %s", err, strings.TrimSpace(string(out)))
		}
		b.cfg.loopback = bin
	} else if err := executable(b.cfg.loopback); err != nil {
		return fmt.Errorf("-loopback: %w", err)
	}
	out, err := exec.CommandContext(ctx, goTool, "env", "GOROOT").Output()
	if err != nil {
		return fmt.Errorf("go env GOROOT: %w", err)
	}
	goroot := strings.TrimSpace(string(out))
	t, err := makeTarball(ctx, goroot, filepath.Join(b.work, "gosrc.tar"))
	if err != nil {
		return fmt.Errorf("tarball of %s/src: %w", goroot, err)
	}
	b.tarball = t
	fmt.Fprintf(os.Stderr, "bench: replfs %s, loopback %s, tarball of %s/src: %d entries\n",
		b.cfg.replfs, b.cfg.loopback, goroot, t.entries)
	return nil
}

func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// runSetup starts a fresh instance of s, runs every workload in it and
// takes it down again.
func (b *bench) runSetup(ctx context.Context, r int, s setup) error {
	dir := filepath.Join(b.work, fmt.Sprintf("r%d-%s", r+1, s.name))
	in, err := s.start(ctx, dir)
	if err != nil {
		if in != nil {
			err = errors.Join(err, in.stop())
		}
		return fmt.Errorf("round %d: start %s: %w", r+1, s.name, err)
	}
	err = b.runWorkloads(ctx, r, s.name, in)
	if serr := in.stop(); serr != nil {
		err = errors.Join(err, fmt.Errorf("round %d: stop %s: %w", r+1, s.name, serr))
	}
	return err
}

func (b *bench) runWorkloads(ctx context.Context, r int, name string, in *instance) error {
	e := &env{root: in.root, sizes: b.cfg.sizes, tarball: b.tarball, block: b.block}
	if in.pid != 0 {
		pt, err := probePassthrough(ctx, in.root, in.pid, b.block)
		if err != nil {
			return fmt.Errorf("round %d, %s: %w", r+1, name, err)
		}
		b.state.mu.Lock()
		b.state.res.passthrough[name] = append(b.state.res.passthrough[name], pt)
		b.state.mu.Unlock()
	}
	for _, w := range b.workloads {
		d, err := b.timeOne(ctx, w, e)
		if err != nil {
			return fmt.Errorf("round %d, %s, %s: %w", r+1, name, w.name, err)
		}
		b.state.mu.Lock()
		b.state.res.secs[w.name][name][r] = d.Seconds()
		b.state.mu.Unlock()
		fmt.Fprintf(os.Stderr, "bench:   %-8s %-9s %8.3fs\n", name, w.name, d.Seconds())
	}
	return nil
}

// timeOne runs one workload; dirty data of earlier steps is written back
// before the clock starts so that it is not charged to this one.
func (b *bench) timeOne(ctx context.Context, w workload, e *env) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if w.prepare != nil {
		if err := w.prepare(ctx, e); err != nil {
			return 0, fmt.Errorf("prepare: %w", err)
		}
	}
	syscall.Sync()
	if w.cold && !dropCaches() {
		b.state.mu.Lock()
		b.state.dropFailed = true
		b.state.mu.Unlock()
	}
	start := time.Now()
	err := w.run(ctx, e)
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if w.cleanup != nil {
		if err := w.cleanup(ctx, e); err != nil {
			return 0, fmt.Errorf("cleanup: %w", err)
		}
	}
	return d, nil
}

func (b *bench) printReport(w io.Writer, runErr error) {
	b.state.mu.Lock()
	defer b.state.mu.Unlock()
	res := b.state.res
	fmt.Fprintln(w)
	if runErr != nil {
		fmt.Fprintln(w, "PARTIAL RESULTS (the run failed; see the error below)")
	}
	res.writeTable(w)
	fmt.Fprintf(w, "\nkernel %s; tarball: %d files (%d entries) of Go's src/; passthrough: loopback %s, replfs %s\n",
		b.kernel, b.tarball.files, b.tarball.entries, res.passthroughSummary("loopback"), res.passthroughSummary("replfs"))
	fs := fsOf(b.work)
	fmt.Fprintf(w, "%d round(s), seq file %d MiB, %d small files; medians of per-round ratios; workdir on %s (%s)\n",
		b.cfg.rounds, b.cfg.sizes.seqBytes>>20, b.cfg.sizes.smallFiles, fs.FSType, fs.Source)
	if b.state.dropFailed {
		fmt.Fprintln(w, "note: dropping caches failed: seqread and statwalk ran with warm caches")
	}
}

func (b *bench) jsonReport(runErr error) report {
	b.state.mu.Lock()
	defer b.state.mu.Unlock()
	res := b.state.res
	fs := fsOf(b.work)
	rep := report{
		Kernel: b.kernel, Complete: runErr == nil, Rounds: b.cfg.rounds, Quick: b.cfg.quick,
		SeqBytes: b.cfg.sizes.seqBytes, SmallFiles: b.cfg.sizes.smallFiles,
		TarEntries: b.tarball.entries, TarFiles: b.tarball.files,
		Workdir: b.work, WorkdirFS: fs.FSType, DropCaches: !b.state.dropFailed,
		Passthrough: map[string]string{}, Orders: res.orders, Workloads: res.rows(),
	}
	if runErr != nil {
		rep.Error = runErr.Error()
	}
	for _, s := range []string{"loopback", "replfs"} {
		rep.Passthrough[s] = res.passthroughSummary(s)
	}
	for _, q := range ratios {
		rep.RatioColumns = append(rep.RatioColumns, q[0]+"/"+q[1])
	}
	return rep
}
