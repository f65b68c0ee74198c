package replicator

import (
	"os"
	"sync"
)

// poolQueue is how many jobs wait for a free goroutine, and how many files
// wait to be read ahead: the crawl runs that far ahead of the copies.
const poolQueue = 64

// pool runs a syncer's jobs on sync-jobs goroutines. A job that copies a
// file goes through one read-ahead goroutine first, which asks the kernel
// for the file's head: many reads are then in flight, where each copy
// alone would wait for its own, and neither the crawl nor the copies pay
// for issuing them.
type pool struct {
	jobs  chan func() error
	ahead chan aheadJob
	done  chan struct{} // closed when the read-ahead goroutine ends
	wg    sync.WaitGroup

	mu  sync.Mutex
	err error // the first target-wide error
}

type aheadJob struct {
	f    *os.File
	size int64
	job  func() error
}

func newPool(n int) *pool {
	p := &pool{jobs: make(chan func() error, poolQueue), ahead: make(chan aheadJob, poolQueue),
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
			prefetch(a.f, a.size)
			p.jobs <- a.job
		}
	}()
	return p
}

// submit queues job.
func (p *pool) submit(job func() error) { p.jobs <- job }

// submitRead queues job, which reads size bytes of f, after a read-ahead.
func (p *pool) submitRead(f *os.File, size int64, job func() error) {
	p.ahead <- aheadJob{f, size, job}
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
