// Command replbench measures replication, side by side in one run:
//
//		go run ./integration/replbench -replfs bin/replfs [-rounds 3] [-workdir /var/tmp] [-quick] [-only verify]
//
//	  - initial sync of the Go distribution's src/ tree to an empty mirror by
//	    replfs's hybrid crawl, against `rsync -a` of the same tree (the order
//	    rotates every round; medians of per-round ratios are reported);
//	  - replication lag: time from close() of a file written through the
//	    mount to identical content on the mirror, under a sustained
//	    create/write workload (p50, p99, max);
//	  - write overhead of the mount with one mirror attached vs none;
//	  - `replfs verify --checksum` of a synced copy of src/ against
//	    `rsync -a --checksum -n` of the same pair, warm caches, alternating.
//
// -only runs the named sections (comma-separated: sync, lag, overhead,
// verify); the default is all of them.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

var (
	bin     = flag.String("replfs", "", "replfs binary (required)")
	rounds  = flag.Int("rounds", 3, "rounds (order rotates)")
	workdir = flag.String("workdir", "/var/tmp", "where data goes (not tmpfs)")
	quick   = flag.Bool("quick", false, "smaller runs")
	only    = flag.String("only", "", "comma-separated sections to run: sync, lag, overhead, verify (default all)")
)

var sections = []string{"sync", "lag", "overhead", "verify"}

// selected tells whether -only asks for section.
func selected(section string) bool {
	return *only == "" || slices.Contains(strings.Split(*only, ","), section)
}

func main() {
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "replbench: -replfs BIN is required")
		os.Exit(2)
	}
	for _, sec := range strings.Split(*only, ",") {
		if *only != "" && !slices.Contains(sections, sec) {
			fmt.Fprintf(os.Stderr, "replbench: -only %s: unknown section (want %s)\n", sec, strings.Join(sections, ", "))
			os.Exit(2)
		}
	}
	abs, err := filepath.Abs(*bin)
	check(err)
	*bin = abs
	root, err := os.MkdirTemp(*workdir, "replbench-")
	check(err)
	defer os.RemoveAll(root)
	defer cleanupMounts(root)

	src := filepath.Join(runtime.GOROOT(), "src")
	fmt.Printf("replbench: %d rounds, data under %s\n\n", *rounds, root)

	var syncRatios, rsyncSecs, replSecs []float64
	if selected("sync") {
		syncRatios, rsyncSecs, replSecs = syncRun(root, src)
	}
	var lags []time.Duration
	if selected("lag") {
		lags = lagRun(root)
	}
	var over float64
	if selected("overhead") {
		over = overhead(root)
	}
	var vr verifyResult
	if selected("verify") {
		vr = verifyRun(root, src)
	}

	fmt.Printf("\n| measure | value |\n|---|---|\n")
	if selected("sync") {
		fmt.Printf("| initial sync of Go src/: replfs (median) | %.2f s |\n", median(replSecs))
		fmt.Printf("| initial sync of Go src/: rsync -a (median) | %.2f s |\n", median(rsyncSecs))
		fmt.Printf("| initial sync replfs/rsync (median of ratios) | %.2fx |\n", median(syncRatios))
	}
	if selected("lag") {
		fmt.Printf("| replication lag p50 / p99 / max (rollover=1s) | %s / %s / %s |\n",
			pct(lags, 50), pct(lags, 99), pct(lags, 100))
	}
	if selected("overhead") {
		fmt.Printf("| write overhead, one mirror vs none (median of ratios) | %.2fx |\n", over)
	}
	if selected("verify") {
		vr.table()
	}
}

// syncRun times the initial sync of src by replfs and by rsync -a.
func syncRun(root, src string) (syncRatios, rsyncSecs, replSecs []float64) {
	for r := range *rounds {
		order := []string{"rsync", "replfs"}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		var tr, tp float64
		for _, who := range order {
			dir := filepath.Join(root, fmt.Sprintf("sync-%d-%s", r, who))
			brick, mnt, mir := dir+"/brick", dir+"/mnt", dir+"/mirror"
			check(os.MkdirAll(mnt, 0o755))
			check(os.MkdirAll(mir, 0o755))
			sh("cp", "-a", src, brick)
			if who == "replfs" {
				// Index the brick first (a first mount does it once), so only
				// the sync is timed.
				sh(*bin, "mount", brick, mnt)
				sh(*bin, "umount", mnt)
				dropCaches()
				t0 := time.Now()
				sh(*bin, "mount", brick, mnt, "-o", "mirror="+mir)
				waitLog(brick, "hybrid crawl done")
				tp = time.Since(t0).Seconds()
				sh(*bin, "umount", mnt)
			} else {
				dropCaches()
				t0 := time.Now()
				sh("rsync", "-a", brick+"/", mir+"/")
				tr = time.Since(t0).Seconds()
			}
			os.RemoveAll(dir)
		}
		fmt.Printf("round %d: initial sync replfs %.2fs, rsync -a %.2fs\n", r+1, tp, tr)
		syncRatios = append(syncRatios, tp/tr)
		rsyncSecs = append(rsyncSecs, tr)
		replSecs = append(replSecs, tp)
	}
	return syncRatios, rsyncSecs, replSecs
}

// verifyResult is the outcome of the verify section, per measured round.
type verifyResult struct {
	replfs, rsync, rsyncHX []float64 // seconds
	floor                  []float64 // seconds: syscallFloor
	ratiosFloor            []float64 // rsync / floor
	ratios, ratiosHX       []float64 // rsync / replfs
	codes                  []int     // exit codes of replfs verify
	items                  []int     // rsync's itemized changes other than directories
}

// verifyRun syncs a copy of src to a mirror with replfs, then times, with
// warm caches and rotating order, `replfs verify --checksum`, `rsync -a
// --checksum -n` of the pair (the yardstick) and `rsync -aHX
// --checksum -n` (which compares hard links and xattrs as replfs does). rsync -n with --checksum still
// reads and hashes every file of equal size on both sides (it lists a
// flipped byte with size and mtime kept), so both do the same reading.
// It also times syscallFloor: the system calls alone, the most any verify
// could gain on this machine.
func verifyRun(root, src string) verifyResult {
	dir := filepath.Join(root, "verify")
	defer os.RemoveAll(dir)
	brick, mnt, mir := dir+"/brick", dir+"/mnt", dir+"/mirror"
	check(os.MkdirAll(mnt, 0o755))
	check(os.MkdirAll(mir, 0o755))
	sh("cp", "-a", src, brick)
	sh(*bin, "mount", brick, mnt, "-o", "mirror="+mir)
	waitLog(brick, "hybrid crawl done")
	sh(*bin, "umount", mnt)

	code, _ := replfsVerify(brick, mir)
	items, _ := rsyncCompare(brick, mir, false)
	fmt.Printf("\nverify: warm-up: replfs verify exit %d, rsync %d itemized non-directory changes\n", code, items)
	var v verifyResult
	for r := range *rounds {
		order := []string{"rsync", "replfs", "rsyncHX", "floor"}
		for range r % len(order) {
			order = append(order[1:], order[0])
		}
		var tr, tx, tp, tf float64
		for _, who := range order {
			t0 := time.Now()
			switch who {
			case "floor":
				tf = syscallFloor(brick, mir).Seconds()
			case "replfs":
				code, out := replfsVerify(brick, mir)
				tp = time.Since(t0).Seconds()
				v.codes = append(v.codes, code)
				if code != 0 {
					fmt.Printf("replfs verify exit %d:\n%s\n", code, firstLines(out, 10))
				}
			default:
				n, out := rsyncCompare(brick, mir, who == "rsyncHX")
				if who == "rsync" {
					tr = time.Since(t0).Seconds()
				} else {
					tx = time.Since(t0).Seconds()
				}
				v.items = append(v.items, n)
				if n != 0 {
					fmt.Printf("%s itemized %d changes:\n%s\n", who, n, firstLines(out, 10))
				}
			}
		}
		fmt.Printf("round %d: verify --checksum replfs %.2fs, rsync -a --checksum -n %.2fs (rsync/replfs %.2fx), rsync -aHX %.2fs (%.2fx), syscall floor %.2fs (rsync/floor %.2fx)\n",
			r+1, tp, tr, tr/tp, tx, tx/tp, tf, tr/tf)
		v.floor = append(v.floor, tf)
		v.ratiosFloor = append(v.ratiosFloor, tr/tf)
		v.replfs = append(v.replfs, tp)
		v.rsync = append(v.rsync, tr)
		v.rsyncHX = append(v.rsyncHX, tx)
		v.ratios = append(v.ratios, tr/tp)
		v.ratiosHX = append(v.ratiosHX, tx/tp)
	}
	return v
}

func (v verifyResult) table() {
	inSync := func(vals []int) string {
		for _, x := range vals {
			if x != 0 {
				return fmt.Sprintf("no %v", vals)
			}
		}
		return "yes"
	}
	fmt.Printf("| verify --checksum of a Go src/ mirror: replfs (median) | %.2f s |\n", median(v.replfs))
	fmt.Printf("| same pair: rsync -a --checksum -n (median) | %.2f s |\n", median(v.rsync))
	fmt.Printf("| rsync/replfs (median of ratios; target >= 2x) | %.2fx |\n", median(v.ratios))
	fmt.Printf("| same pair: rsync -aHX --checksum -n, the metadata replfs compares (median) | %.2f s |\n", median(v.rsyncHX))
	fmt.Printf("| rsync -aHX/replfs (median of ratios) | %.2fx |\n", median(v.ratiosHX))
	fmt.Printf("| the system calls alone a verify --checksum must make, raw, no hashing (median) | %.2f s |\n", median(v.floor))
	fmt.Printf("| rsync/floor: the best any verify could do here (median of ratios) | %.2fx |\n", median(v.ratiosFloor))
	fmt.Printf("| in sync per replfs (exit 0) / per rsync (no itemized file) | %s / %s |\n",
		inSync(v.codes), inSync(v.items))
}

// replfsVerify runs replfs verify --checksum and returns its exit code and
// output; a failure to run (or exit 2) ends the benchmark.
func replfsVerify(brick, mir string) (int, string) {
	out, err := exec.Command(*bin, "verify", "--checksum", brick, mir).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		fail("replfs verify: %v", err)
	}
	if code != 0 && code != 1 {
		fail("replfs verify --checksum %s %s: exit %d\n%s", brick, mir, code, out)
	}
	return code, string(out)
}

// rsyncCompare runs rsync -a --checksum -n with itemized output and
// returns the number of items other than directories (whose times rsync
// may list) and the output.
func rsyncCompare(brick, mir string, hx bool) (int, string) {
	args := []string{"-a", "--checksum", "-n", "--itemize-changes", "--exclude=/.replfs"}
	if hx {
		// Hard links and xattrs too, as replfs verify compares them, but
		// not replfs's own xattrs (a mirror keeps more of them).
		args = append(args, "-HX", "--filter=-x trusted.replfs.*")
	}
	out, err := exec.Command("rsync", append(args, brick+"/", mir+"/")...).CombinedOutput()
	if err != nil {
		fail("rsync -n: %v\n%s", err, out)
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if len(l) > 1 && l[1] != 'd' {
			n++
		}
	}
	return n, string(out)
}

func firstLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = append(l[:n], fmt.Sprintf("... (%d lines)", len(l)))
	}
	return strings.Join(l, "\n")
}

// waitLog waits for the daemon to log msg (cheaper than polling status,
// which would steal CPU from what is measured).
func waitLog(brick, msg string) {
	deadline := time.Now().Add(30 * time.Minute)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(filepath.Join(brick, ".replfs/log/replfs.log"))
		if bytes.Contains(data, []byte(msg)) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	fail("%s never logged %q", brick, msg)
}

// waitSynced polls status until the hybrid crawl has finished.
func waitSynced(mnt, mir string) {
	deadline := time.Now().Add(30 * time.Minute)
	for time.Now().Before(deadline) {
		out, err := exec.Command(*bin, "status", "--json", mnt).Output()
		if err == nil {
			var st []struct {
				Crawl      string    `json:"crawl"`
				State      string    `json:"state"`
				LastSynced time.Time `json:"last_synced"`
			}
			if json.Unmarshal(out, &st) == nil && len(st) == 1 && st[0].Crawl != "Hybrid" && !st[0].LastSynced.IsZero() {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	fail("mirror %s never finished its initial sync", mir)
}

// lagRun writes files through a mount with one mirror at a steady rate and
// measures, for each, the time from close() to identical content on the
// mirror.
func lagRun(root string) []time.Duration {
	dir := filepath.Join(root, "lag")
	brick, mnt, mir := dir+"/brick", dir+"/mnt", dir+"/mirror"
	for _, d := range []string{brick, mnt, mir} {
		check(os.MkdirAll(d, 0o755))
	}
	sh(*bin, "mount", brick, mnt, "-o", "mirror="+mir)
	defer sh(*bin, "umount", mnt)
	waitSynced(mnt, mir)
	n, every := 600, 25*time.Millisecond // 40 files/s for 15 s
	if *quick {
		n = 120
	}
	type item struct {
		name   string
		data   []byte
		closed time.Time
	}
	var mu sync.Mutex
	var pending []item
	var lags []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			mu.Lock()
			rest := pending[:0]
			for _, it := range pending {
				got, err := os.ReadFile(filepath.Join(mir, it.name))
				if err == nil && bytes.Equal(got, it.data) {
					lags = append(lags, time.Since(it.closed))
				} else {
					rest = append(rest, it)
				}
			}
			pending = rest
			finished := len(lags) == n
			mu.Unlock()
			if finished {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for i := range n {
		name := fmt.Sprintf("d%02d/f%05d", i%20, i)
		os.MkdirAll(filepath.Join(mnt, filepath.Dir(name)), 0o755)
		data := bytes.Repeat([]byte(fmt.Sprintf("%d,", i)), 1000+i%4000)
		check(os.WriteFile(filepath.Join(mnt, name), data, 0o644))
		mu.Lock()
		pending = append(pending, item{name, data, time.Now()})
		mu.Unlock()
		time.Sleep(every)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		fail("lag run: files never reached the mirror")
	}
	return lags
}

// overhead times a write workload through the mount with one mirror and
// with none, alternating, and returns the median ratio.
func overhead(root string) float64 {
	var ratios []float64
	for r := range *rounds {
		var t [2]float64
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		for _, withMirror := range order {
			dir := filepath.Join(root, fmt.Sprintf("over-%d-%d", r, withMirror))
			brick, mnt, mir := dir+"/brick", dir+"/mnt", dir+"/mirror"
			for _, d := range []string{brick, mnt, mir} {
				check(os.MkdirAll(d, 0o755))
			}
			args := []string{"mount", brick, mnt}
			if withMirror == 1 {
				args = append(args, "-o", "mirror="+mir)
			}
			sh(*bin, args...)
			t0 := time.Now()
			files := 3000
			if *quick {
				files = 500
			}
			for i := range files {
				p := filepath.Join(mnt, fmt.Sprintf("d%02d", i%30), fmt.Sprintf("f%05d", i))
				if i < 30 {
					check(os.MkdirAll(filepath.Dir(p), 0o755))
				}
				check(os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, 8192), 0o644))
			}
			sh("dd", "if=/dev/zero", "of="+filepath.Join(mnt, "big"), "bs=1M", "count=256", "conv=fsync", "status=none")
			t[withMirror] = time.Since(t0).Seconds()
			sh(*bin, "umount", mnt)
			os.RemoveAll(dir)
		}
		fmt.Printf("round %d: write workload with a mirror %.2fs, without %.2fs\n", r+1, t[1], t[0])
		ratios = append(ratios, t[1]/t[0])
	}
	return median(ratios)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func pct(d []time.Duration, p int) string {
	if len(d) == 0 {
		return "-"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	i = min(max(i-1, 0), len(s)-1)
	return s[i].Round(time.Millisecond).String()
}

func dropCaches() {
	if err := exec.Command("sh", "-c", "sync && echo 3 > /proc/sys/vm/drop_caches").Run(); err != nil {
		fmt.Fprintln(os.Stderr, "replbench: cannot drop caches (timings are warm):", err)
	}
}

func sh(name string, args ...string) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		fail("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func cleanupMounts(root string) {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], root+"/") {
			exec.Command(*bin, "umount", f[4]).Run()
		}
	}
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "replbench: "+format+"\n", args...)
	panic("replbench failed")
}
