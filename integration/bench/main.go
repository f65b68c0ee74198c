// Command bench times the same workloads on a bare directory, go-fuse's
// example loopback daemon and replfs, side by side in one run:
//
//	go run ./integration/bench -replfs bin/replfs [-loopback BIN] [-rounds 3] [-quick] [-workdir DIR] [-only a,b] [-json FILE]
//
// This machine's timings swing several-fold between runs (DESIGN.md,
// "Performance facts"), so each round runs the three setups one after the
// other, in an order rotated every round, and the table reports medians of
// per-round ratios rather than ratios of separate runs. Every setup runs on
// the same file system (under -workdir) with fresh directories and mounts
// each round; only the operation itself is timed. Everything mounted is
// unmounted on return, on error and on SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

type config struct {
	replfs   string
	loopback string // empty: build go-fuse's example into the workdir
	workdir  string
	jsonPath string
	rounds   int
	quick    bool
	only     []string
	sizes    sizes
}

var (
	errUsage       = errors.New("usage")
	errInterrupted = errors.New("interrupted")
)

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(2)
	}
	// Signals cancel the context; run then unmounts everything. The
	// handler stays installed until run returns, so a second ^C cannot
	// cut the cleanup short.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err = run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: FAILED:", err)
		if errors.Is(err, errInterrupted) {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	var cfg config
	var only string
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	fl.StringVar(&cfg.replfs, "replfs", "", "replfs binary (required)")
	fl.StringVar(&cfg.loopback, "loopback", "", "go-fuse example loopback binary (default: build it)")
	fl.IntVar(&cfg.rounds, "rounds", 3, "rounds; the setup order rotates every round")
	fl.BoolVar(&cfg.quick, "quick", false, "smoke run: 64 MiB file, 1,000 small files")
	fl.StringVar(&cfg.workdir, "workdir", "/var/tmp", "a fresh directory is made in it for all data (not tmpfs)")
	fl.StringVar(&only, "only", "", "comma-separated workloads to run (default all)")
	fl.StringVar(&cfg.jsonPath, "json", "", "also write the results as JSON to this file")
	if err := fl.Parse(args); err != nil {
		return cfg, err
	}
	if fl.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %s", strings.Join(fl.Args(), " "))
	}
	if cfg.replfs == "" {
		return cfg, errors.New("-replfs is required")
	}
	if cfg.rounds < 1 {
		return cfg, errors.New("-rounds must be at least 1")
	}
	cfg.sizes = sizes{seqBytes: 1 << 30, smallFiles: 10000}
	if cfg.quick {
		cfg.sizes = sizes{seqBytes: 64 << 20, smallFiles: 1000}
	}
	known := map[string]bool{}
	for _, w := range workloads() {
		known[w.name] = true
	}
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !known[name] {
			return cfg, fmt.Errorf("-only: unknown workload %q", name)
		}
		cfg.only = append(cfg.only, name)
	}
	var err error
	for _, p := range []*string{&cfg.replfs, &cfg.loopback, &cfg.workdir, &cfg.jsonPath} {
		if *p != "" && err == nil {
			*p, err = filepath.Abs(*p)
		}
	}
	return cfg, err
}

// bench is one run: its configuration, working directory and results.
type bench struct {
	cfg       config
	work      string
	logDir    string
	kernel    string
	workloads []workload
	clean     cleaner
	tarball   tarball
	block     []byte
	// state is written by the goroutine running the workloads and read
	// by run, possibly while that goroutine is stuck in a FUSE call.
	state benchState
}

func run(ctx context.Context, cfg config) error {
	b, err := newBench(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: workdir %s\n", b.work)
	err = b.runAll(ctx)
	if errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%w by signal: %v", errInterrupted, err)
	}
	err = errors.Join(err, b.clean.run())
	b.printReport(os.Stdout, err)
	if cfg.jsonPath != "" {
		err = errors.Join(err, writeJSON(cfg.jsonPath, b.jsonReport(err)))
	}
	return errors.Join(err, b.removeWorkdir(err == nil))
}

func newBench(cfg config) (*bench, error) {
	b := &bench{cfg: cfg, kernel: "unknown", block: make([]byte, blockSize)}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		b.kernel = strings.TrimSpace(string(data))
	}
	for _, w := range workloads() {
		if len(cfg.only) == 0 || contains(cfg.only, w.name) {
			b.workloads = append(b.workloads, w)
		}
	}
	rand.NewChaCha8([32]byte{'r', 'e', 'p', 'l', 'f', 's'}).Read(b.block)
	if err := os.MkdirAll(cfg.workdir, 0o755); err != nil {
		return nil, fmt.Errorf("workdir: %w", err)
	}
	work, err := os.MkdirTemp(cfg.workdir, "replfs-bench-")
	if err != nil {
		return nil, fmt.Errorf("workdir: %w", err)
	}
	b.work, b.logDir = work, filepath.Join(work, "logs")
	if err := os.Mkdir(b.logDir, 0o755); err != nil {
		return nil, err
	}
	if fs := fsOf(work); fs.FSType == "tmpfs" {
		fmt.Fprintf(os.Stderr, "bench: warning: %s is on tmpfs; bare timings will not be a disk's\n", work)
	}
	names := make([]string, 0, len(b.workloads))
	for _, w := range b.workloads {
		names = append(names, w.name)
	}
	var setupNames []string
	for _, s := range b.setups() {
		setupNames = append(setupNames, s.name)
	}
	b.state.res = newResults(setupNames, names, cfg.rounds)
	return b, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// removeWorkdir deletes the run's directory; after a failure it keeps the
// daemons' logs.
func (b *bench) removeWorkdir(ok bool) error {
	if ms := mountsUnder(b.work); len(ms) > 0 {
		return fmt.Errorf("left %s in place: still mounted: %s", b.work, strings.Join(ms, ", "))
	}
	if ok {
		return os.RemoveAll(b.work)
	}
	entries, _ := os.ReadDir(b.work)
	for _, e := range entries {
		if e.Name() != "logs" {
			os.RemoveAll(filepath.Join(b.work, e.Name()))
		}
	}
	fmt.Fprintf(os.Stderr, "bench: daemon logs kept in %s\n", b.logDir)
	return nil
}
