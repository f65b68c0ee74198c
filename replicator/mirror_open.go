package replicator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/gfid"
)

// ReadTargetInfo reads dir/.replfs/target.json; ok is false when there is none.
func ReadTargetInfo(dir string) (TargetInfo, bool, error) {
	var ti TargetInfo
	data, err := os.ReadFile(filepath.Join(dir, gfid.StateDir, "target.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return ti, false, nil
	}
	if err != nil {
		return ti, false, err
	}
	if err := json.Unmarshal(data, &ti); err != nil {
		return ti, false, fmt.Errorf("mirror %s: corrupt .replfs/target.json: %v", dir, err)
	}
	return ti, true, nil
}

// readInfo checks that the mirror directory exists, is a directory and is
// not a brick, and reads its target.json (ok is false when it has none).
func (m *Mirror) readInfo() (TargetInfo, bool, error) {
	fi, err := os.Stat(m.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return TargetInfo{}, false, fmt.Errorf("mirror %s does not exist", m.path)
		}
		return TargetInfo{}, false, fmt.Errorf("mirror %s: %w", m.path, err)
	}
	if !fi.IsDir() {
		return TargetInfo{}, false, fmt.Errorf("mirror %s is not a directory", m.path)
	}
	if _, err := os.Stat(filepath.Join(m.state(), "brick.json")); err == nil {
		return TargetInfo{}, false, fmt.Errorf("%s is a replfs brick, not a mirror", m.path)
	}
	return ReadTargetInfo(m.path)
}

// Open checks the mirror directory and makes it a mirror of brickID on
// first use. A directory that is a brick, or a mirror of another brick, is
// refused.
func (m *Mirror) Open(brickID string) error {
	ti, ok, err := m.readInfo()
	if err != nil {
		return err
	}
	if ok {
		if ti.Format != TargetFormat {
			return fmt.Errorf("mirror %s: unsupported target format %d (this replfs reads %d)", m.path, ti.Format, TargetFormat)
		}
		if ti.Brick != brickID {
			return fmt.Errorf("mirror %s is already a mirror of another brick (%s)", m.path, ti.Brick)
		}
		if ti.Xattr != "trusted" && ti.Xattr != "user" {
			return fmt.Errorf("mirror %s: target.json names unknown xattr namespace %q", m.path, ti.Xattr)
		}
	} else {
		ti = TargetInfo{Format: TargetFormat, Kind: "mirror", ID: gfid.New().String(), Brick: brickID,
			Xattr: probeXattr(m.path), Created: time.Now().UTC()}
	}
	m.use(ti)
	for _, d := range []string{gfid.IndexDir, ".replfs/tmp", limboDir} {
		if err := os.MkdirAll(filepath.Join(m.path, d), 0o700); err != nil {
			return fmt.Errorf("mirror %s: %w", m.path, err)
		}
	}
	m.initCreator()
	if ents, err := os.ReadDir(filepath.Join(m.path, gfid.IndexDir)); err == nil && len(ents) == 0 {
		m.fresh.Store(true)
	}
	if err := m.setGFID(m.path, gfid.Root); err != nil {
		return err
	}
	if err := m.setDirPointer(gfid.Root, gfid.Zero, ""); err != nil {
		return fmt.Errorf("mirror %s: %w", m.path, err)
	}
	// Transfers cut short by a crash leave temporary files: drop them.
	tmp := filepath.Join(m.path, ".replfs/tmp")
	if ents, err := os.ReadDir(tmp); err == nil {
		for _, e := range ents {
			os.RemoveAll(filepath.Join(tmp, e.Name()))
		}
	}
	if !ok {
		data, _ := json.MarshalIndent(ti, "", "  ")
		if err := writeFileAtomic(filepath.Join(m.state(), "target.json"), append(data, '\n')); err != nil {
			return fmt.Errorf("mirror %s: %w", m.path, err)
		}
	}
	return nil
}

// use makes ti the mirror's identity and sets the xattr names it implies.
func (m *Mirror) use(ti TargetInfo) {
	m.info = ti
	ns := ti.Xattr
	m.t = tree{root: m.path, gfidX: ns + ".replfs.gfid"}
	m.namesX, m.stimeX = ns+".replfs.pgfid", ns+".replfs.stime"
	m.dirs = make(map[gfid.GFID]string)
}

func probeXattr(dir string) string {
	const probe = "trusted.replfs.probe"
	if err := xattr.LSet(dir, probe, []byte{1}); err == nil {
		xattr.LRemove(dir, probe)
		return "trusted"
	}
	return "user"
}

// Check tells whether the mirror is still there and still the same one.
func (m *Mirror) Check() error {
	ti, ok, err := ReadTargetInfo(m.path)
	if err != nil {
		return fmt.Errorf("mirror %s: %w", m.path, err)
	}
	if !ok || ti.ID != m.info.ID {
		if _, err := os.Stat(m.path); err != nil {
			return fmt.Errorf("mirror %s is gone: %w", m.path, err)
		}
		return fmt.Errorf("mirror %s is no longer this mirror (target.json missing or replaced)", m.path)
	}
	if err := unix.Access(m.path, unix.W_OK); err != nil {
		return fmt.Errorf("mirror %s is not writable: %w", m.path, err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(m.path, &sfs); err == nil && sfs.Flags&unix.ST_RDONLY != 0 {
		return fmt.Errorf("mirror %s is on a read-only filesystem", m.path)
	}
	return nil
}
