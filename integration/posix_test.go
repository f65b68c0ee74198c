package integration

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/posixtest"
)

func posixNames() []string {
	names := make([]string, 0, len(posixtest.All))
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// outcome records how a subtest ended.
func outcome(t *testing.T, into map[string]string, name string) {
	t.Cleanup(func() {
		switch {
		case t.Failed():
			into[name] = "fail"
		case t.Skipped():
			into[name] = "skip"
		default:
			into[name] = "pass"
		}
	})
}

// loopbackBaseline runs the suite on go-fuse's plain loopback, mounted in
// this process, to learn which tests this machine lets pass.
func loopbackBaseline(t *testing.T) map[string]string {
	requireFUSE(t)
	got := map[string]string{}
	t.Run("loopback", func(t *testing.T) {
		for _, name := range posixNames() {
			fn := posixtest.All[name]
			t.Run(name, func(t *testing.T) {
				outcome(t, got, name)
				dir := t.TempDir()
				orig, mnt := filepath.Join(dir, "orig"), filepath.Join(dir, "mnt")
				must(t, os.Mkdir(orig, 0o755))
				must(t, os.Mkdir(mnt, 0o755))
				root, err := gofs.NewLoopbackRoot(orig)
				must(t, err)
				opts := &gofs.Options{}
				opts.DirectMount = os.Geteuid() == 0
				opts.EnableLocks = true
				server, err := gofs.Mount(mnt, root, opts)
				if err != nil {
					t.Fatalf("mount loopback: %v", err)
				}
				t.Cleanup(func() { server.Unmount() })
				fn(t, mnt)
			})
		}
	})
	return got
}

// TestPosixConformance runs go-fuse's own POSIX suite against a fresh
// replfs mount per test, in the default configuration and in the shared
// (allow_other, kernel permission checks) one, and checks the journal is
// still readable after each. Every test that passes on go-fuse's loopback
// here must pass on replfs; a skip does not count as a pass.
func TestPosixConformance(t *testing.T) {
	baseline := loopbackBaseline(t)
	for _, cfg := range []struct {
		name string
		opts []string
	}{{"default", nil}, {"allow_other", []string{"allow_other", "rollover=100ms"}}} {
		got := map[string]string{}
		t.Run(cfg.name, func(t *testing.T) {
			for _, name := range posixNames() {
				fn := posixtest.All[name]
				t.Run(name, func(t *testing.T) {
					outcome(t, got, name)
					f := newFixture(t)
					f.mount(t, cfg.opts...)
					fn(t, f.Mnt)
					f.unmount(t)
					dumpJournal(t, f.Brick)
				})
			}
		})
		for _, name := range posixNames() {
			if baseline[name] == "pass" && got[name] != "pass" {
				t.Errorf("%s: %s passes on go-fuse's loopback but ended %q on replfs", cfg.name, name, got[name])
			}
		}
	}
}
