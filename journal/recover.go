package journal

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"go.uber.org/zap"
)

// recoverDir validates every closed segment of dir, repairs and seals any
// open segment left by a crash, and returns the last seq found.
func recoverDir(dir string, log *zap.Logger, now time.Time) (uint64, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return 0, err
	}
	var last uint64
	var prev string
	for i, s := range segs {
		// Retention only removes the oldest segments, so the rest must
		// follow each other without a gap or an overlap.
		if prev != "" && s.first != last+1 {
			return 0, fmt.Errorf("%w: segment %s does not follow %s (seq %d expected)", ErrCorrupt, s.name, prev, last+1)
		}
		if !s.open {
			if _, err := scanFile(dir, s); err != nil {
				return 0, err
			}
			last, prev = s.last, s.name
			continue
		}
		l, err := recoverOpen(dir, s, i == len(segs)-1, log, now)
		if err != nil {
			return 0, err
		}
		if l != 0 {
			last, prev = l, s.name
		} else {
			// Nothing left, but its name still says where seqs resume,
			// even when retention has removed every closed segment.
			last = s.first - 1
		}
	}
	return last, nil
}

func scanFile(dir string, s segName) (scanResult, error) {
	f, err := os.Open(segPath(dir, s.name))
	if err != nil {
		return scanResult{}, fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	var size int64
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	return scanSegment(f, s, size, nil)
}

// recoverOpen cuts the torn tail of an open segment left by a crash (or by
// a clean Close of an empty window), keeps the cut bytes in
// <name>.torn-<unix> and seals the rest. It returns the last surviving
// seq. A segment with no record left is removed, unless it is the last
// one: then it is emptied and left for Open to reuse as the active
// segment, so that the next seq is never forgotten.
func recoverOpen(dir string, s segName, isLast bool, log *zap.Logger, now time.Time) (uint64, error) {
	path := segPath(dir, s.name)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat segment %s: %w", s.name, err)
	}
	res, err := scanSegment(f, s, fi.Size(), nil)
	if err != nil {
		return 0, err
	}
	if size := fi.Size(); size > res.end {
		reason := "trailing bytes"
		if res.bad != nil {
			reason = res.bad.reason
		}
		torn, err := saveTorn(f, path, res.end, size, now)
		if err != nil {
			return 0, err
		}
		if err := f.Truncate(res.end); err != nil {
			return 0, fmt.Errorf("cut torn tail of %s: %w", s.name, err)
		}
		log.Warn("journal: cut torn tail of crashed segment",
			zap.String("segment", s.name), zap.Int64("offset", res.end),
			zap.Int64("bytes", size-res.end), zap.String("reason", reason),
			zap.String("kept_in", torn), zap.Int("records_kept", res.records))
	}
	if res.records == 0 && isLast {
		if err := f.Truncate(0); err != nil {
			return 0, fmt.Errorf("empty segment %s: %w", s.name, err)
		}
		return 0, nil
	}
	if res.records == 0 {
		if err := os.Remove(path); err != nil {
			return 0, fmt.Errorf("remove empty segment: %w", err)
		}
		return 0, nil
	}
	if err := os.Chtimes(path, now, now); err != nil {
		return 0, fmt.Errorf("seal %s: %w", s.name, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("seal %s: fsync: %w", s.name, err)
	}
	closed := closedName(s.first, res.last)
	if err := os.Rename(path, segPath(dir, closed)); err != nil {
		return 0, fmt.Errorf("seal %s: %w", s.name, err)
	}
	log.Info("journal: sealed segment left open by a crash",
		zap.String("segment", closed), zap.Int("records", res.records))
	return res.last, nil
}

// saveTorn copies bytes [from, to) of f to a new file beside path and
// fsyncs it, so that nothing is thrown away unseen.
func saveTorn(f *os.File, path string, from, to int64, now time.Time) (string, error) {
	base := fmt.Sprintf("%s%s%d", path, tornInfix, now.Unix())
	name := base
	var out *os.File
	for i := 1; ; i++ {
		var err error
		out, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || i > 100 {
			return "", fmt.Errorf("keep torn tail: %w", err)
		}
		name = fmt.Sprintf("%s.%d", base, i)
	}
	_, err := io.Copy(out, io.NewSectionReader(f, from, to-from))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("keep torn tail in %s: %w", name, err)
	}
	return name, nil
}
