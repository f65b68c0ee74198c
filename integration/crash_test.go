package integration

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func daemonPID(t *testing.T, brick string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(brick, ".replfs/run/lock"))
	must(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("no daemon pid in lock file: %q", b)
	}
	return pid
}

type done struct{ op, name, name2 string }

// TestKillDuringWorkloadLosesNoRecord kills the daemon with SIGKILL while a
// workload runs, remounts, and checks that the journal opens and that every
// operation that completed before the kill has its record.
func TestKillDuringWorkloadLosesNoRecord(t *testing.T) {
	f := newFixture(t)
	f.mount(t, "rollover=50ms")
	pid := daemonPID(t, f.Brick)

	var mu sync.Mutex
	var completed []done
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			dir := fmt.Sprintf("w%d", w)
			if os.Mkdir(f.m(dir), 0o755) != nil {
				return
			}
			mu.Lock()
			completed = append(completed, done{"MKDIR", dir, ""})
			mu.Unlock()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("f%d", i)
				if os.WriteFile(f.m(dir+"/"+name), []byte(strings.Repeat("x", i%5000)), 0o644) != nil {
					return
				}
				mu.Lock()
				completed = append(completed, done{"CREATE", name, ""})
				mu.Unlock()
				if i%3 == 0 {
					if os.Rename(f.m(dir+"/"+name), f.m(dir+"/r"+name)) != nil {
						return
					}
					mu.Lock()
					completed = append(completed, done{"RENAME", name, "r" + name})
					mu.Unlock()
				}
				if i%3 != 0 && i%5 == 1 {
					if os.Remove(f.m(dir+"/"+name)) != nil {
						return
					}
					mu.Lock()
					completed = append(completed, done{"UNLINK", name, ""})
					mu.Unlock()
				}
			}
		}(w)
	}
	waitFor(t, 20*time.Second, "workload to get going", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(completed) > 300
	})
	must(t, syscall.Kill(pid, syscall.SIGKILL))
	close(stop)
	wg.Wait()
	waitFor(t, 10*time.Second, "daemon to die", func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH || isZombie(pid) })
	// A dead FUSE daemon leaves "transport endpoint is not connected".
	must(t, syscall.Unmount(f.Mnt, syscall.MNT_DETACH))

	f.mount(t, "rollover=50ms")
	recs := dumpJournal(t, f.Brick)
	have := map[done]bool{}
	for _, r := range recs {
		if r.Kind == "E" {
			have[done{r.Op, r.Name, r.Name2}] = true
		}
	}
	mu.Lock()
	defer mu.Unlock()
	missing := 0
	for _, c := range completed {
		if !have[c] {
			missing++
			if missing < 10 {
				t.Errorf("completed %s %s %s has no journal record", c.op, c.name, c.name2)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d completed operations have no record", missing, len(completed))
	}
	t.Logf("%d completed operations before the kill, all journaled (%d records)", len(completed), len(recs))

	// The remount reconciled the gfid index: every file has a gfid and
	// exactly one index link.
	checkIndexExact(t, f.Brick)
	// And the mount works.
	writeFile(t, f.m("after"), "ok")
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	fields := strings.Fields(string(b))
	return len(fields) > 2 && fields[2] == "Z"
}

// checkIndexExact walks a brick and its gfid index independently of
// replfs's code: every inode has a gfid, every non-directory exactly one
// index link, and no index entry outlives its inode's names.
func checkIndexExact(t *testing.T, brick string) {
	t.Helper()
	names := map[uint64]int{}
	err := filepath.WalkDir(brick, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == filepath.Join(brick, ".replfs") {
			return filepath.SkipDir
		}
		if p == brick {
			return nil
		}
		g := gfidAt(t, p)
		idx := filepath.Join(brick, g.IndexPath())
		var st, ist syscall.Stat_t
		must(t, syscall.Lstat(p, &st))
		if err := syscall.Lstat(idx, &ist); err != nil {
			t.Errorf("%s (gfid %s) has no index entry", p, g)
			return nil
		}
		if !d.IsDir() {
			if ist.Ino != st.Ino {
				t.Errorf("index entry of %s is another inode", p)
			}
			names[st.Ino]++
		}
		return nil
	})
	must(t, err)
	filepath.WalkDir(filepath.Join(brick, ".replfs/gfid"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) != nil {
			return nil
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFLNK && uint64(st.Nlink) != uint64(names[st.Ino])+1 {
			t.Errorf("index entry %s: nlink %d but %d names in the brick", p, st.Nlink, names[st.Ino])
		}
		return nil
	})
}
