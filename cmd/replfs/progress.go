package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows a long walk on a terminal: entries compared (or, with
// checksums, bytes hashed) against the brick's totals, counted by a
// quick walk of the brick beside it, with an ETA once those are known.
// When stderr is not a terminal it shows nothing.
type progress struct {
	bar  *progressbar.ProgressBar
	quit chan struct{}
	wg   sync.WaitGroup
}

func showProgress(quiet bool) bool { return !quiet && term.IsTerminal(int(os.Stderr.Fd())) }

func newBar(desc string, bytes bool) *progressbar.ProgressBar {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(200 * time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionFullWidth(),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionShowTotalBytes(true))
	} else {
		opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("entries"))
	}
	return progressbar.NewOptions64(-1, opts...)
}

// startProgress follows cur (entries, bytes hashed) of a walk of brick.
// A nil *progress is valid and shows nothing.
func startProgress(quiet bool, desc, brick string, byBytes bool, cur func() (int64, int64)) *progress {
	if !showProgress(quiet) {
		return nil
	}
	p := &progress{bar: newBar(desc, byBytes), quit: make(chan struct{})}
	total := make(chan int64, 1)
	go func() { total <- countBrick(brick, byBytes, p.quit) }()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				return
			case n := <-total:
				if n > 0 {
					p.bar.ChangeMax64(n)
				}
			case <-t.C:
				e, b := cur()
				if byBytes {
					p.bar.Set64(b)
					p.bar.Describe(fmt.Sprintf("%s: %d entries", desc, e))
				} else {
					p.bar.Set64(e)
				}
			}
		}
	}()
	return p
}

// count shows done of total (repair's fixes).
func (p *progress) count(desc string, done, total int64) {
	if p == nil {
		return
	}
	p.bar.Describe(desc)
	p.bar.ChangeMax64(total)
	p.bar.Set64(done)
}

func (p *progress) stop() {
	if p == nil {
		return
	}
	select {
	case <-p.quit:
		return
	default:
	}
	close(p.quit)
	p.wg.Wait()
	p.bar.Clear()
}

// countBrick counts the brick's entries (or its regular files' bytes),
// skipping .replfs; 0 when stopped early.
func countBrick(brick string, bytes bool, quit <-chan struct{}) int64 {
	var n int64
	stopped := false
	filepath.WalkDir(brick, func(p string, d fs.DirEntry, err error) error {
		select {
		case <-quit:
			stopped = true
			return filepath.SkipAll
		default:
		}
		if err != nil {
			return nil
		}
		if d.IsDir() && d.Name() == ".replfs" && filepath.Dir(p) == brick {
			return filepath.SkipDir
		}
		if !bytes {
			n++
		} else if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	if stopped {
		return 0
	}
	return n
}
