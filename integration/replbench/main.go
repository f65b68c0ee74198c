// Command replbench measures replication, side by side in one run:
//
//		go run ./integration/replbench -replfs bin/replfs [-rounds 3] [-workdir /var/tmp] [-quick] [-only sync|lag|overhead]
//
//	  - initial sync of the Go distribution's src/ tree to an empty mirror by
//	    replfs's hybrid crawl, against `rsync -a` of the same tree (the order
//	    rotates every round; medians of per-round ratios are reported);
//	  - replication lag: time from close() of a file written through the
//	    mount to identical content on the mirror, under a sustained
//	    create/write workload (p50, p99, max);
//	  - write overhead of the mount with one mirror attached vs none.
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
	only    = flag.String("only", "", "run one part only: sync, lag or overhead")
)

func main() {
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "replbench: -replfs BIN is required")
		os.Exit(2)
	}
	switch *only {
	case "", "sync", "lag", "overhead":
	default:
		fmt.Fprintln(os.Stderr, "replbench: -only takes sync, lag or overhead")
		os.Exit(2)
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
	for r := range *rounds {
		if !part("sync") {
			break
		}
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

	var lags []time.Duration
	if part("lag") {
		lags = lagRun(root)
	}
	var over float64
	if part("overhead") {
		over = overhead(root)
	}

	fmt.Printf("\n| measure | value |\n|---|---|\n")
	if part("sync") {
		fmt.Printf("| initial sync of Go src/: replfs (median) | %.2f s |\n", median(replSecs))
		fmt.Printf("| initial sync of Go src/: rsync -a (median) | %.2f s |\n", median(rsyncSecs))
		fmt.Printf("| initial sync replfs/rsync (median of ratios) | %.2fx |\n", median(syncRatios))
	}
	if part("lag") {
		fmt.Printf("| replication lag p50 / p99 / max (rollover=1s) | %s / %s / %s |\n",
			pct(lags, 50), pct(lags, 99), pct(lags, 100))
	}
	if part("overhead") {
		fmt.Printf("| write overhead, one mirror vs none (median of ratios) | %.2fx |\n", over)
	}
}

// part tells whether the named part of the benchmark runs (-only).
func part(name string) bool { return *only == "" || *only == name }

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
