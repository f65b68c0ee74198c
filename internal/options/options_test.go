package options

import (
	"strings"
	"testing"
	"time"
)

func TestParseAcceptsWhatFstabPasses(t *testing.T) {
	// What mount.fuse3 hands a helper for "defaults,_netdev,rollover=2s".
	m, err := Parse([]string{"rw,rollover=2s,dev,suid", "nofail,x-systemd.automount,x-systemd.requires=network-online.target"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Rollover != 2*time.Second {
		t.Fatalf("rollover = %v, want 2s", m.Rollover)
	}
	if m.ReadOnly {
		t.Fatal("rw parsed as read-only")
	}
}

func TestParseValues(t *testing.T) {
	m, err := Parse([]string{"ro,allow_other,retention=1h,attr-timeout=0s,fsname=data,log-level=debug"})
	if err != nil {
		t.Fatal(err)
	}
	if !m.ReadOnly || !m.AllowOther || m.Retention != time.Hour || m.FsName != "data" || m.LogLevel != "debug" {
		t.Fatalf("parsed %+v", m)
	}
}

func TestParseRejectsBadInput(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"bogus", `unknown mount option "bogus"`},
		{"rollover=fast", `"fast" is not a duration`},
		{"rollover", "needs a duration"},
		{"rollover=1ms", "below the minimum"},
		{"allow_other=yes", "takes no value"},
		{"log-level=loud", "not one of"},
		{"fsname=", "needs a value"},
		{"mirror=relative/dir", "must be absolute"},
		{"mirror", "needs a directory"},
		{"mirror=/a,mirror=/a", "given twice"},
		{"mirror=/a,mirror=/a/", "given twice"},
		{"mirror=/a/b/,mirror=/a/./b", "given twice"},
		{"mirror=/a,mirror-adopt=/a", "given twice"},
		{"mirror-adopt=/a,mirror-adopt=/a", "given twice"},
		{"mirror-adopt=rel", "must be absolute"},
		{"mirror-adopt", "needs a directory"},
		{"sync-jobs=0", "whole number from 1"},
		{"sync-jobs=many", "whole number"},
		{"batch-size=-3", "whole number"},
		{"ignore-deletes=1", "takes no value"},
		{"verify-interval=500ms", "below the minimum 1s"},
		{"verify-interval=daily", "not a duration"},
		{"verify-interval", "needs a duration"},
	} {
		_, err := Parse([]string{"rw," + tc.in})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestParseReplication(t *testing.T) {
	m, err := Parse([]string{"rw,mirror=/backup/a,mirror=/mnt/nfs/b,sync-jobs=4", "batch-size=100,ignore-deletes"})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Mirrors) != 2 || m.Mirrors[0] != "/backup/a" || m.Mirrors[1] != "/mnt/nfs/b" {
		t.Fatalf("mirrors = %q", m.Mirrors)
	}
	if m.SyncJobs != 4 || m.BatchSize != 100 || !m.IgnoreDeletes || m.VerifyInterval != 0 {
		t.Fatalf("parsed %+v", m)
	}
	for in, want := range map[string]time.Duration{"verify-interval=10m": 10 * time.Minute,
		"verify-interval=1s": time.Second, "verify-interval=10m,verify-interval=off": 0} {
		m, err := Parse([]string{in})
		if err != nil || m.VerifyInterval != want {
			t.Errorf("Parse(%q): verify interval %v, %v; want %v", in, m.VerifyInterval, err, want)
		}
	}
}

func TestParseMirrorAdopt(t *testing.T) {
	// As mount.fuse3 passes an fstab line's options.
	m, err := Parse([]string{"rw,mirror=/backup/a,mirror-adopt=/srv/copy,dev,suid", "mirror_adopt=/srv/old"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(m.Mirrors, " ") != "/backup/a /srv/copy /srv/old" {
		t.Fatalf("mirrors = %q", m.Mirrors)
	}
	if m.Adopting("/backup/a") || !m.Adopting("/srv/copy") || !m.Adopting("/srv/old") {
		t.Fatalf("adopt = %q", m.Adopt)
	}
}
