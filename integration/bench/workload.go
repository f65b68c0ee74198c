package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// workload is one timed operation. Only run is timed; prepare and cleanup
// bring the directory to the state run expects and back, so that each
// workload can also run alone (-only).
type workload struct {
	name string
	// cold drops the page, dentry and inode caches after prepare.
	cold    bool
	prepare func(ctx context.Context, e *env) error
	run     func(ctx context.Context, e *env) error
	cleanup func(ctx context.Context, e *env) error
}

// env is what the workloads of one instance share.
type env struct {
	root    string
	sizes   sizes
	tarball tarball
	block   []byte // 1 MiB of random data, the unit of every write
}

type sizes struct {
	seqBytes   int64
	smallFiles int
}

const (
	blockSize  = 1 << 20
	smallSize  = 4 << 10
	smallDirs  = 10
	seqName    = "seq.dat"
	smallName  = "small"
	treeName   = "tree" // the tarball is extracted into it, giving tree/src
	probeBytes = 16 << 20
)

func (e *env) seqPath() string   { return filepath.Join(e.root, seqName) }
func (e *env) smallPath() string { return filepath.Join(e.root, smallName) }
func (e *env) treePath() string  { return filepath.Join(e.root, treeName) }

func workloads() []workload {
	return []workload{
		{name: "seqwrite", prepare: removeSeq, run: seqWrite},
		{name: "seqread", cold: true, prepare: ensureSeq, run: seqRead, cleanup: removeSeq},
		{name: "create10k", prepare: removeSmall, run: createSmall, cleanup: removeSmall},
		{name: "untar", prepare: freshTree, run: untar},
		{name: "statwalk", cold: true, prepare: ensureTree, run: statWalk},
		{name: "rm", prepare: ensureTree, run: rmTree, cleanup: checkTreeGone},
	}
}

func removeSeq(ctx context.Context, e *env) error { return removeIfExists(e.seqPath()) }

func seqWrite(ctx context.Context, e *env) error {
	return writeFile(ctx, e.seqPath(), e.sizes.seqBytes, e.block)
}

// writeFile writes size bytes in 1 MiB writes and fsyncs.
func writeFile(ctx context.Context, path string, size int64, block []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	for off := int64(0); off < size; off += int64(len(block)) {
		if err := ctx.Err(); err != nil {
			f.Close()
			return err
		}
		n := min(int64(len(block)), size-off)
		if _, err := f.Write(block[:n]); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return f.Close()
}

func ensureSeq(ctx context.Context, e *env) error {
	if fi, err := os.Stat(e.seqPath()); err == nil && fi.Size() == e.sizes.seqBytes {
		return nil
	}
	return seqWrite(ctx, e)
}

func seqRead(ctx context.Context, e *env) error {
	f, err := os.Open(e.seqPath())
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, blockSize)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := f.Read(buf)
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if total != e.sizes.seqBytes {
		return fmt.Errorf("read %d bytes of %s, want %d", total, e.seqPath(), e.sizes.seqBytes)
	}
	return nil
}

func removeSmall(ctx context.Context, e *env) error { return removeIfExists(e.smallPath()) }

// createSmall spreads the files evenly over smallDirs directories; the
// directories are part of the timed work (ten mkdirs next to thousands of
// creates).
func createSmall(ctx context.Context, e *env) error {
	data := e.block[:smallSize]
	per := e.sizes.smallFiles / smallDirs
	for d := 0; d < smallDirs; d++ {
		dir := filepath.Join(e.smallPath(), fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for i := 0; i < per; i++ {
			if i%100 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func freshTree(ctx context.Context, e *env) error {
	if err := removeIfExists(e.treePath()); err != nil {
		return err
	}
	if err := os.Mkdir(e.treePath(), 0o755); err != nil {
		return err
	}
	// The tarball lives on the bare disk: read it once so that every setup
	// starts extracting from the page cache.
	f, err := os.Open(e.tarball.path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}

func untar(ctx context.Context, e *env) error {
	return command(ctx, "tar", "-xf", e.tarball.path, "-C", e.treePath())
}

func ensureTree(ctx context.Context, e *env) error {
	if _, err := os.Lstat(filepath.Join(e.treePath(), "src")); err == nil {
		return nil
	}
	if err := freshTree(ctx, e); err != nil {
		return err
	}
	return untar(ctx, e)
}

// statWalk also checks that the extraction was complete: every tar entry
// must be found.
func statWalk(ctx context.Context, e *env) error {
	n := 0
	err := filepath.WalkDir(filepath.Join(e.treePath(), "src"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n%1000 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if _, err := os.Lstat(p); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return err
	}
	if n != e.tarball.entries {
		return fmt.Errorf("walked %d entries, the tarball holds %d", n, e.tarball.entries)
	}
	return nil
}

func rmTree(ctx context.Context, e *env) error {
	return command(ctx, "rm", "-rf", filepath.Join(e.treePath(), "src"))
}

func checkTreeGone(ctx context.Context, e *env) error {
	if _, err := os.Lstat(filepath.Join(e.treePath(), "src")); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s/src still there after rm -rf (%v)", e.treePath(), err)
	}
	return nil
}

func removeIfExists(path string) error {
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

func command(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, firstLines(string(out), 5))
	}
	return nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines[n] = "..."
	}
	return strings.Join(lines, "\n")
}

// dropCaches is "sync; echo 3 > /proc/sys/vm/drop_caches"; it reports
// whether the caches could be dropped.
func dropCaches() bool {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0) == nil
}

// tarball is the Go distribution's src/ as a tar file.
type tarball struct {
	path    string
	entries int // every entry, src/ itself included: what a walk of the extracted tree finds
	files   int // regular files
}

func makeTarball(ctx context.Context, goroot, path string) (tarball, error) {
	if err := command(ctx, "tar", "-C", goroot, "-cf", path, "src"); err != nil {
		return tarball{}, err
	}
	t := tarball{path: path}
	f, err := os.Open(path)
	if err != nil {
		return t, err
	}
	defer f.Close()
	r := tar.NewReader(f)
	for {
		h, err := r.Next()
		if err == io.EOF {
			return t, nil
		}
		if err != nil {
			return t, fmt.Errorf("read %s: %w", path, err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		t.entries++
		if h.Typeflag == tar.TypeReg {
			t.files++
		}
	}
}
