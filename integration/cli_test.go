package integration

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestJournalDumpFromAndInspectJSON checks the CLI forms a script uses:
// dump --from SEQ starts there, and inspect --json names the same gfid as
// the brick's xattr.
func TestJournalDumpFromAndInspectJSON(t *testing.T) {
	f := newFixture(t)
	f.mount(t)
	for _, n := range []string{"a", "b", "c"} {
		writeFile(t, f.m(n), n)
	}
	r := run(t, "inspect", "--json", f.m("b"))
	if r.code != 0 {
		t.Fatalf("inspect: %s", r.stderr)
	}
	var in struct {
		GFID    string `json:"gfid"`
		Index   string `json:"index"`
		IndexOK bool   `json:"index_ok"`
	}
	must(t, json.Unmarshal([]byte(r.stdout), &in))
	if want := gfidAt(t, f.b("b")).String(); in.GFID != want || !in.IndexOK || !strings.HasSuffix(in.Index, want) {
		t.Errorf("inspect --json = %+v, want gfid %s with an intact index entry", in, want)
	}
	f.unmount(t)

	all := dumpJournal(t, f.Brick)
	if len(all) < 4 {
		t.Fatalf("only %d records", len(all))
	}
	from := all[2].Seq
	r = run(t, "journal", "dump", "--from", strconv.FormatUint(from, 10), f.Brick)
	if r.code != 0 {
		t.Fatalf("dump --from: %s", r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != len(all)-2 || !strings.HasPrefix(lines[0], strconv.FormatUint(from, 10)+" ") {
		t.Errorf("dump --from %d printed %d lines starting %q; want %d lines from seq %d", from, len(lines), lines[0], len(all)-2, from)
	}
	// The text line carries the same gfid and name as the JSON record.
	if !strings.Contains(r.stdout, all[2].GFID) {
		t.Errorf("text dump lacks gfid %s", all[2].GFID)
	}
}

// TestDeadMountpointGetsActionableError: a daemon killed with SIGKILL
// leaves a dead mount; mounting over it says what to do.
func TestDeadMountpointGetsActionableError(t *testing.T) {
	f := newFixture(t)
	f.mount(t)
	pid := daemonPID(t, f.Brick)
	must(t, syscall.Kill(pid, syscall.SIGKILL))
	waitFor(t, 10*time.Second, "daemon to die", func() bool { return syscall.Kill(pid, 0) == syscall.ESRCH || isZombie(pid) })
	if _, err := os.Stat(f.Mnt); err == nil {
		t.Fatal("stat of a mount whose daemon was killed succeeded")
	}
	expectOneLineError(t, run(t, "mount", f.Brick, f.Mnt), 1, "umount -l")
	must(t, syscall.Unmount(f.Mnt, syscall.MNT_DETACH))
	f.mount(t)
	writeFile(t, f.m("again"), "ok")
}
