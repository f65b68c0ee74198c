package replicator

import (
	"sync"

	"github.com/replfs/replfs/internal/target"
)

// poolQueue is how many jobs wait for a free goroutine: with the files
// they copy open and read ahead, it bounds the descriptors and the memory
// in flight. aheadQueue is how many files wait to be opened: the crawl
// runs that far ahead of the copies (a burst of files found by one
// listing does not stop it).
const (
	poolQueue  = 64
	aheadQueue = 4096
)

// pool runs a syncer's jobs on sync-jobs goroutines. A job that copies a
// file goes through one read-ahead goroutine first, which opens the file
// and asks the kernel for its head: many reads are then in flight, where
// each copy alone would wait for its own, and neither the crawl nor the
// copies pay for opening and issuing them.
type pool struct {
	jobs  chan func() error
	ahead chan aheadJob
	done  chan struct{} // closed when the read-ahead goroutine ends
	wg    sync.WaitGroup

	mu  sync.Mutex
	err error // the first target-wide error
}

type aheadJob struct {
	open func() (srcFile, target.Attr, error)
	job  func(srcFile, target.Attr, error) error
}

func newPool(n int) *pool {
	p := &pool{jobs: make(chan func() error, poolQueue), ahead: make(chan aheadJob, aheadQueue),
		done: make(chan struct{})}
	for range n {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for j := range p.jobs {
				if err := j(); err != nil {
					p.mu.Lock()
					if p.err == nil {
						p.err = err
					}
					p.mu.Unlock()
				}
			}
		}()
	}
	go func() {
		defer close(p.done)
		for a := range p.ahead {
			f, fa, err := a.open()
			if err == nil {
				prefetch(f.fd, fa.Size)
			}
			p.jobs <- func() error { return a.job(f, fa, err) }
		}
	}()
	return p
}

// submit queues job.
func (p *pool) submit(job func() error) { p.jobs <- job }

// submitRead queues job, to be called with the file open returns (or its
// error) once a read-ahead of that file has begun.
func (p *pool) submitRead(open func() (srcFile, target.Attr, error), job func(srcFile, target.Attr, error) error) {
	p.ahead <- aheadJob{open, job}
}

// wait runs every queued job and returns the first target-wide error.
func (p *pool) wait() error {
	close(p.ahead)
	<-p.done
	close(p.jobs)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
