package fs

import (
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// touch marks n changed at t (unix ns). The mark costs a map insert under
// the shared mutex; the xattr writes happen once per rollover, off the
// operation's path.
func (r *replfs) touch(n *node, t int64) {
	if t == 0 {
		t = time.Now().UnixNano()
	}
	r.mu.Lock()
	if r.dirty[n] < t {
		r.dirty[n] = t
	}
	r.mu.Unlock()
}

func (r *replfs) takeDirty() map[*node]int64 {
	r.mu.Lock()
	d := r.dirty
	if len(d) > 0 {
		r.dirty = make(map[*node]int64, len(d))
	}
	r.mu.Unlock()
	if len(d) == 0 {
		return nil
	}
	return d
}

func (r *replfs) flushXtimeAsync() {
	d := r.takeDirty()
	if d == nil {
		return
	}
	r.xtimeWG.Add(1)
	go func() {
		defer r.xtimeWG.Done()
		r.xtimeMu.Lock()
		defer r.xtimeMu.Unlock()
		r.writeXtimes(d)
	}()
}

// FlushXtime writes pending xtime marks now and waits for any flush in
// progress.
func (r *replfs) flushXtime() {
	r.xtimeWG.Wait()
	r.xtimeMu.Lock()
	defer r.xtimeMu.Unlock()
	if d := r.takeDirty(); d != nil {
		r.writeXtimes(d)
	}
}

// writeXtimes sets the xtime of every changed inode and of all its
// ancestors to the newest change time below it.
func (r *replfs) writeXtimes(d map[*node]int64) {
	marks := make(map[*node]int64, len(d)*2)
	for n, t := range d {
		cur := n
		for cur != nil {
			if marks[cur] >= t {
				break
			}
			marks[cur] = t
			_, p := cur.Parent()
			if p == nil {
				break
			}
			pn, ok := p.Operations().(*node)
			if !ok {
				break
			}
			cur = pn
		}
	}
	var buf [12]byte
	failed := 0
	for n, t := range marks {
		p := n.path()
		encodeXtime(&buf, t)
		if err := unix.Lsetxattr(p, r.brick.XtimeXattr, buf[:], 0); err != nil && err != unix.ENOENT {
			failed++
			if failed == 1 {
				r.log.Warn("set xtime", zap.String("path", p), zap.Error(err))
			}
		}
	}
}
