package fs

import (
	"sync"

	"go.uber.org/zap"

	"github.com/replfs/replfs/internal/gfid"
)

// retire is a gfid index entry to drop after its inode lost a name.
type retire struct {
	g     gfid.GFID
	isDir bool
}

// retirer drops index entries off the unlink's path. Removing the entry
// is where the brick frees the inode, and its xx/yy directory is usually
// cold, so doing it inline doubled the latency of rm. A crash can leave an
// entry behind; the next mount reconciles the index (the dirty marker is
// still there), and a reader of the index treats an entry with no other
// link as a deleted file.
type retirer struct {
	idx  *index
	log  *zap.Logger
	ch   chan retire
	wg   sync.WaitGroup
	once sync.Once
}

func newRetirer(idx *index, log *zap.Logger) *retirer {
	r := &retirer{idx: idx, log: log, ch: make(chan retire, 8192)}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for x := range r.ch {
			r.do(x)
		}
	}()
	return r
}

func (r *retirer) do(x retire) {
	var err error
	if x.isDir {
		err = r.idx.remove(x.g)
	} else {
		err = r.idx.dropIfLast(x.g)
	}
	if err != nil {
		r.log.Warn("gfid index: retire entry", zap.Stringer("gfid", x.g), zap.Error(err))
	}
}

// add queues x, or does it inline when the queue is full.
func (r *retirer) add(x retire) {
	select {
	case r.ch <- x:
	default:
		r.do(x)
	}
}

// close drains the queue.
func (r *retirer) close() {
	r.once.Do(func() {
		close(r.ch)
		r.wg.Wait()
	})
}
