package integration

import (
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// TestPosixConformance runs go-fuse's own POSIX suite against a fresh
// replfs mount per test, in the default configuration and in the shared
// (allow_other, kernel permission checks) one, then checks that the
// journal is still readable.
func TestPosixConformance(t *testing.T) {
	names := make([]string, 0, len(posixtest.All))
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, cfg := range []struct {
		name string
		opts []string
	}{{"default", nil}, {"allow_other", []string{"allow_other", "rollover=100ms"}}} {
		t.Run(cfg.name, func(t *testing.T) {
			for _, name := range names {
				fn := posixtest.All[name]
				t.Run(name, func(t *testing.T) {
					f := newFixture(t)
					f.mount(t, cfg.opts...)
					fn(t, f.Mnt)
					f.unmount(t)
					dumpJournal(t, f.Brick)
				})
			}
		})
	}
}
