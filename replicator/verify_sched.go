package replicator

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// verifyLoop verifies every target each VerifyInterval (metadata only:
// content is hashed where sizes match and mtimes do not). A target is
// verified only while Active and complete up to some time: entries the
// brick changed after that time (its stime) are in flight, re-checked at
// the end of the walk and reported as changed if they still differ.
func (m *Manager) verifyLoop(ctx context.Context, b *brickTree) {
	t := time.NewTimer(m.cfg.VerifyInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, w := range m.workers {
			if ctx.Err() != nil {
				return
			}
			w.verify(ctx, b)
		}
		t.Reset(m.cfg.VerifyInterval)
	}
}

func (w *worker) verify(ctx context.Context, b *brickTree) {
	w.mu.Lock()
	stime, state, paused, crawl := w.st.Stime, w.state, w.st.Paused, w.crawl
	w.mu.Unlock()
	if state != StateActive || paused || crawl == CrawlHybrid || stime == 0 {
		return // nothing settled to compare yet
	}
	start := time.Now()
	var first []Difference
	v := &Verifier{b: b, t: w.t, opt: VerifyOptions{Workers: 2, ChangedAfter: time.Unix(0, stime),
		OnDiff: func(d Difference) {
			if len(first) < 10 {
				first = append(first, d)
			}
		}}, sum: VerifySummary{ByKind: map[DiffKind]int64{}}}
	sum, err := v.Run(ctx)
	if ctx.Err() != nil {
		return
	}
	vs := &VerifyStatus{Time: time.Now(), Took: time.Since(start).Round(time.Millisecond).String(),
		InSync: err == nil && sum.Differences == 0 && sum.Errors == 0, Differences: sum.Differences,
		ByKind: sum.ByKind, Errors: sum.Errors}
	if err != nil {
		vs.Error = err.Error()
	}
	w.mu.Lock()
	w.lastVerify = vs
	w.mu.Unlock()
	fields := []zap.Field{zap.String("target", w.t.Name()), zap.Bool("in_sync", vs.InSync),
		zap.Int64("differences", sum.Differences), zap.Any("by_kind", sum.ByKind), zap.Int64("errors", sum.Errors),
		zap.Int64("entries", sum.Entries), zap.Duration("took", time.Since(start))}
	if vs.InSync {
		w.log.Info("verify done", fields...)
		return
	}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	w.log.Warn("verify found differences", append(fields, zap.Any("first", first))...)
}
