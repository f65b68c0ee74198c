// Package options parses mount options the way fstab and mount(8) pass
// them: comma-separated, key or key=value, with the generic options that
// mount(8), fuse3's mount helper and systemd add accepted and ignored.
package options

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Mount holds the replfs options of one mount.
type Mount struct {
	Rollover        time.Duration
	Retention       time.Duration
	EntryTimeout    time.Duration
	AttrTimeout     time.Duration
	NegativeTimeout time.Duration
	AllowOther      bool
	ReadOnly        bool
	Debug           bool
	FsName          string
	LogFile         string
	LogLevel        string

	// Replication.
	Mirrors []string // mirror=PATH and mirror-adopt=PATH, repeatable: directory mirrors, in order
	// Adopt lists the mirrors given as mirror-adopt=PATH: a directory
	// holding an existing copy, which the first crawl makes equal to the
	// brick (removing what the brick does not have, listed first).
	Adopt         []string
	SyncJobs      int  // sync-jobs=N: parallel data transfers per target
	BatchSize     int  // batch-size=N: journal records per batch
	IgnoreDeletes bool // ignore-deletes: never remove from targets
	// VerifyInterval (verify-interval=DUR, off by default): how often the
	// daemon verifies its targets against the brick.
	VerifyInterval time.Duration
}

// generic options meant for mount(8), the kernel or systemd, not for replfs.
var generic = map[string]bool{
	"defaults": true, "rw": true, "_netdev": true, "nofail": true, "noauto": true, "auto": true,
	"user": true, "users": true, "nouser": true, "owner": true, "group": true,
	"dev": true, "nodev": true, "suid": true, "nosuid": true, "exec": true, "noexec": true,
	"async": true, "atime": true, "noatime": true, "relatime": true, "norelatime": true,
	"strictatime": true, "nostrictatime": true, "diratime": true, "nodiratime": true,
	"lazytime": true, "nolazytime": true, "loud": true, "silent": true,
	"default_permissions": true, "nosymfollow": true, "symfollow": true,
}

// Generic reports whether opt (key or key=value) is an option replfs
// accepts and ignores.
func Generic(opt string) bool {
	key, _, _ := strings.Cut(opt, "=")
	return generic[key] || strings.HasPrefix(key, "x-") || key == "comment" ||
		key == "helper" || key == "context" || key == "fscontext" || key == "defcontext" || key == "rootcontext"
}

// Parse reads -o arguments (each may hold several comma-separated options).
func Parse(args []string) (Mount, error) {
	var m Mount
	for _, arg := range args {
		for _, opt := range strings.Split(arg, ",") {
			opt = strings.TrimSpace(opt)
			if opt == "" {
				continue
			}
			if err := m.set(opt); err != nil {
				return Mount{}, err
			}
		}
	}
	return m, nil
}

func (m *Mount) set(opt string) error {
	key, val, hasVal := strings.Cut(opt, "=")
	flag := func(p *bool) error {
		if hasVal {
			return fmt.Errorf("mount option %s takes no value (got %q)", key, opt)
		}
		*p = true
		return nil
	}
	dur := func(p *time.Duration, min time.Duration) error {
		if !hasVal || val == "" {
			return fmt.Errorf("mount option %s needs a duration, e.g. %s=1s", key, key)
		}
		d, err := time.ParseDuration(val)
		if err != nil {
			return fmt.Errorf("mount option %s: %q is not a duration (use e.g. 500ms, 1s, 2m)", key, val)
		}
		if d < min {
			return fmt.Errorf("mount option %s: %s is below the minimum %s", key, val, min)
		}
		*p = d
		return nil
	}
	count := func(p *int, lo, hi int) error {
		n, err := strconv.Atoi(val)
		if !hasVal || err != nil || n < lo || n > hi {
			return fmt.Errorf("mount option %s needs a whole number from %d to %d (got %q)", key, lo, hi, opt)
		}
		*p = n
		return nil
	}
	str := func(p *string) error {
		if !hasVal || val == "" {
			return fmt.Errorf("mount option %s needs a value", key)
		}
		*p = val
		return nil
	}
	switch key {
	case "mirror", "mirror-adopt", "mirror_adopt":
		return m.addMirror(key, val, hasVal)
	case "sync-jobs", "sync_jobs":
		return count(&m.SyncJobs, 1, 64)
	case "batch-size", "batch_size":
		return count(&m.BatchSize, 1, 1<<20)
	case "ignore-deletes", "ignore_deletes":
		return flag(&m.IgnoreDeletes)
	case "verify-interval", "verify_interval":
		if val == "off" || val == "0" {
			m.VerifyInterval = 0
			return nil
		}
		return dur(&m.VerifyInterval, time.Second)
	case "rollover":
		return dur(&m.Rollover, 10*time.Millisecond)
	case "retention":
		return dur(&m.Retention, 0)
	case "entry-timeout", "entry_timeout":
		return dur(&m.EntryTimeout, 0)
	case "attr-timeout", "attr_timeout":
		return dur(&m.AttrTimeout, 0)
	case "negative-timeout", "negative_timeout":
		return dur(&m.NegativeTimeout, 0)
	case "allow_other", "allow-other":
		return flag(&m.AllowOther)
	case "ro":
		return flag(&m.ReadOnly)
	case "debug":
		return flag(&m.Debug)
	case "fsname":
		return str(&m.FsName)
	case "log":
		return str(&m.LogFile)
	case "log-level", "log_level":
		if err := str(&m.LogLevel); err != nil {
			return err
		}
		switch val {
		case "debug", "info", "warn", "error":
			return nil
		}
		return fmt.Errorf("mount option log-level: %q is not one of debug, info, warn, error", val)
	}
	if Generic(opt) {
		return nil
	}
	return fmt.Errorf("unknown mount option %q", opt)
}

// addMirror adds a mirror= or mirror-adopt= directory. Two spellings of
// one path are caught here; other aliases (symlinks, bind mounts) once the
// directories are checked (CheckSeparate).
func (m *Mount) addMirror(key, val string, hasVal bool) error {
	if !hasVal || val == "" {
		return fmt.Errorf("mount option %s needs a directory, e.g. %s=/backup/data", key, key)
	}
	if !strings.HasPrefix(val, "/") {
		return fmt.Errorf("mount option %s=%s: the path must be absolute", key, val)
	}
	// Kept clean: it is the target's name in status, pause and resume.
	clean := filepath.Clean(val)
	for _, d := range m.Mirrors {
		if d == clean {
			return fmt.Errorf("mount option %s=%s given twice; name each mirror once", key, val)
		}
	}
	m.Mirrors = append(m.Mirrors, clean)
	if key != "mirror" {
		m.Adopt = append(m.Adopt, clean)
	}
	return nil
}

// Adopting reports whether mirror dir was given as mirror-adopt=.
func (m Mount) Adopting(dir string) bool {
	return slices.Contains(m.Adopt, dir)
}

// Known lists the replfs options, for help texts.
const Known = "mirror=DIR (repeatable), mirror-adopt=DIR (repeatable), sync-jobs=N, batch-size=N, ignore-deletes, verify-interval=DUR, rollover=DUR, retention=DUR, entry-timeout=DUR, attr-timeout=DUR, negative-timeout=DUR, allow_other, ro, debug, fsname=NAME, log=FILE, log-level=LEVEL"
