package replicator

import (
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// lister lists the brick's directories for a full hybrid crawl, ahead of
// it and in its order (depth first, each directory's entries in inode
// order), on its own goroutine. The crawl's own listing reads would wait
// one at a time behind the copies' data reads; the lister's run while the
// crawl works on what came before. A directory is opened once and its
// gfid read from that descriptor, so a listing is known to be of the
// directory the crawl expects, whatever renames happen on the way (which
// the journal replays after the crawl, as for any listing).
type lister struct {
	b     *brickTree
	out   chan listing
	ahead atomic.Int64 // entries listed that the crawl has not taken
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

// listing is one directory as the lister found it at path.
type listing struct {
	path string
	g    gfid.GFID
	ents []target.DirEntry
	err  error
}

// Bounds on how far ahead of the crawl the lister runs.
const (
	listAheadEntries = 16384
	listAheadDirs    = 4096
)

func (b *brickTree) startLister() *lister {
	l := &lister{b: b, out: make(chan listing, listAheadDirs), wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		defer close(l.out)
		l.walk(b.root, gfid.Root, true)
	}()
	return l
}

// walk lists directory g at dp and, after it, its subdirectories; false
// when stopped.
func (l *lister) walk(dp string, g gfid.GFID, root bool) bool {
	ls := l.list(dp, root)
	if ls.err == nil && ls.g != g {
		ls.err = errUnstable // another directory is at dp now
		ls.ents = nil
	}
	for l.ahead.Load() > listAheadEntries {
		select {
		case <-l.wake:
		case <-l.stop:
			return false
		}
	}
	l.ahead.Add(int64(len(ls.ents)))
	select {
	case l.out <- ls:
	case <-l.stop:
		return false
	}
	for _, e := range ls.ents {
		// The crawl descends into the same entries of the same listing.
		if e.Mode == sIFDIR && e.GFID != gfid.Zero && !l.walk(dp+"/"+e.Name, e.GFID, false) {
			return false
		}
	}
	return true
}

// list reads directory dp through one descriptor: its gfid, then each
// entry's attributes and gfid (skipping .replfs at the root).
func (l *lister) list(dp string, root bool) listing {
	ls := listing{path: dp}
	fd, err := l.b.openDir(dp)
	if err != nil {
		ls.err = err
		return ls
	}
	defer unix.Close(fd)
	var v [16]byte
	if n, err := unix.Fgetxattr(fd, l.b.gfidX, v[:]); err == nil && n == 16 {
		ls.g = gfid.GFID(v)
	}
	ls.ents, ls.err = readDirFD(&l.b.tree, fd, dp, root)
	return ls
}

// next returns the listing of directory g at path dp, the next one the
// crawl needs; ok is false when the lister does not have it, and from
// then on the crawl lists for itself.
func (l *lister) next(dp string, g gfid.GFID) (ents []target.DirEntry, ok bool) {
	ls, open := <-l.out
	if !open || ls.err != nil || ls.path != dp || ls.g != g {
		return nil, false
	}
	if l.ahead.Add(-int64(len(ls.ents))) <= listAheadEntries {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return ls.ents, true
}

// close stops the lister and waits for it.
func (l *lister) close() {
	close(l.stop)
	for range l.out {
	}
	<-l.done
}
