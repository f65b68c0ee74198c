package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"

	"github.com/replfs/replfs/internal/layout"
	"go.uber.org/zap"
)

const consumersFile = "consumers.json"

// consumersState is the content of consumers.json.
type consumersState struct {
	Version   int               `json:"version"`
	Consumers map[string]uint64 `json:"consumers"`
}

func loadConsumers(dir string) (map[string]uint64, error) {
	b, err := layout.ReadInfoPath(filepath.Join(dir, consumersFile), layout.MaxInfoSize)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]uint64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load consumers: %w", err)
	}
	var st consumersState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("load consumers: %s: %w", consumersFile, err)
	}
	if st.Version != 1 {
		return nil, fmt.Errorf("load consumers: %s: unsupported version %d", consumersFile, st.Version)
	}
	if st.Consumers == nil {
		st.Consumers = map[string]uint64{}
	}
	return st.Consumers, nil
}

// storeConsumers replaces consumers.json atomically: a crash leaves the
// old or the new content, never a mix.
func storeConsumers(dir string, c map[string]uint64) error {
	b, err := json.MarshalIndent(consumersState{Version: 1, Consumers: c}, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, consumersFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return fsyncDir(dir)
}

// SetConsumer records that consumer name has applied every record up to
// and including seq. Retention keeps every segment a consumer has not
// passed. The state is durable when SetConsumer returns.
func (j *Journal) SetConsumer(name string, seq uint64) error {
	if name == "" {
		return errors.New("set consumer: empty name")
	}
	return j.updateConsumers(func(c map[string]uint64) { c[name] = seq })
}

// RemoveConsumer forgets consumer name, so retention no longer waits for
// it. Removing an unknown consumer is not an error.
func (j *Journal) RemoveConsumer(name string) error {
	return j.updateConsumers(func(c map[string]uint64) { delete(c, name) })
}

func (j *Journal) updateConsumers(change func(map[string]uint64)) error {
	j.mu.Lock()
	closed := j.closed
	j.mu.Unlock()
	if closed {
		return ErrClosed
	}
	j.cmu.Lock()
	defer j.cmu.Unlock()
	c := maps.Clone(j.consumers)
	change(c)
	if err := storeConsumers(j.dir, c); err != nil {
		return fmt.Errorf("store journal consumers: %w", err)
	}
	j.consumers = c
	return nil
}

// Consumers returns every registered consumer and the last seq it applied.
func (j *Journal) Consumers() map[string]uint64 {
	j.cmu.Lock()
	defer j.cmu.Unlock()
	return maps.Clone(j.consumers)
}

// retain deletes the oldest closed segments that every registered
// consumer has passed (any, if none is registered) and that were sealed
// longer than Retention ago. It stops at the first segment it must keep,
// so the retained journal is always one contiguous run of seqs.
func (j *Journal) retain() error {
	j.rmu.Lock()
	defer j.rmu.Unlock()
	limit := uint64(math.MaxUint64)
	for _, seq := range j.Consumers() {
		limit = min(limit, seq)
	}
	segs, err := listSegments(j.dir)
	if err != nil {
		return err
	}
	now := j.now()
	removed := 0
	for _, s := range segs {
		if s.open || s.last > limit {
			break
		}
		path := segPath(j.dir, s.name)
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("retention: %w", err)
		}
		if now.Sub(fi.ModTime()) <= j.retention {
			break
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("retention: %w", err)
		}
		removed++
		if ce := j.log.Check(zap.DebugLevel, "journal segment removed"); ce != nil {
			ce.Write(zap.String("segment", s.name))
		}
	}
	if removed == 0 {
		return nil
	}
	j.log.Info("journal retention", zap.Int("segments_removed", removed))
	return fsyncDir(j.dir)
}
