package replicator

import (
	"sync"

	"golang.org/x/sys/unix"
)

// fdCache keeps the descriptors of directories a mirror resolved (by
// gfid, or index buckets by their xx/yy), so that the next operation in
// the same directory costs no openat2 and no gfid check: an initial sync
// makes every file of a directory in a row. A descriptor follows its
// directory through renames, which is what naming directories by gfid
// means. The cache is emptied at the end of every batch (SetStime) and when
// it grows past its bound, so that no descriptor outlives the batch that
// resolved it by long; a directory removed by the mirror is dropped at
// once.
type fdCache[K comparable] struct {
	mu  sync.Mutex
	m   map[K]*cachedFD
	max int
}

// cachedFD is a shared descriptor; the last user of a dropped one closes it.
type cachedFD struct {
	fd   int
	refs int
	dead bool
	mu   *sync.Mutex // its cache's
}

// get returns the cached descriptor of k, held until put.
func (c *fdCache[K]) get(k K) (*cachedFD, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil, false
	}
	e.refs++
	return e, true
}

// add caches fd (already opened and checked) as k's and returns it held.
// A racing add of the same k keeps the first one.
func (c *fdCache[K]) add(k K, fd int) *cachedFD {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		unix.Close(fd)
		e.refs++
		return e
	}
	if c.m == nil {
		c.m = make(map[K]*cachedFD)
	}
	if len(c.m) >= c.max {
		c.dropAllLocked()
	}
	e := &cachedFD{fd: fd, refs: 2, mu: &c.mu} // the cache's reference and the caller's
	c.m[k] = e
	return e
}

// put releases a descriptor got from get or add.
func (e *cachedFD) put() {
	e.mu.Lock()
	e.refs--
	last := e.refs == 0
	e.mu.Unlock()
	if last {
		unix.Close(e.fd)
	}
}

// drop forgets k's descriptor.
func (c *fdCache[K]) drop(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		delete(c.m, k)
		c.release(e)
	}
}

// dropAll forgets every descriptor.
func (c *fdCache[K]) dropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropAllLocked()
}

func (c *fdCache[K]) dropAllLocked() {
	for k, e := range c.m {
		delete(c.m, k)
		c.release(e)
	}
}

// release drops the cache's own reference (c.mu held).
func (c *fdCache[K]) release(e *cachedFD) {
	e.dead = true
	e.refs--
	if e.refs == 0 {
		unix.Close(e.fd)
	}
}

// reopen opens the directory of a cached descriptor anew, for reading its
// entries: a shared descriptor has one file position, which two listings
// (or two goroutines) would share.
func (e *cachedFD) reopen() (int, error) {
	return unix.Openat(e.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}
