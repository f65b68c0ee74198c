// Package targettest is the conformance suite every target kind runs:
// one call of Run from a one-line test in the kind's package, each case a
// subtest on a fresh target, named for what a user relies on.
//
// The suite speaks only internal/target: the core, and the optional
// capabilities it type-asserts (a case that needs one says so in its
// name, and is skipped where the kind lacks it). What it cannot reach
// through the interface, a kind offers in its Harness: a second handle on
// the same place (Reopen), a way to take the place away
// (MakeUnavailable), a directory that must never change (Outside) and
// damage done behind the target's back (Tamper).
package targettest

import (
	"testing"

	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// Harness is one fresh target of the kind under test and what the suite
// needs to know about it. newTarget makes one per subtest; the suite
// closes every handle it is given, the harness removes what it made (with
// t.Cleanup or t.TempDir).
type Harness struct {
	// Target is a new, empty place, never opened: the suite calls Open or
	// Attach itself.
	Target target.Target
	// BrickID is the brick the suite opens the target for ("" for one
	// the suite makes up).
	BrickID string
	// Reopen returns a new handle, not yet opened, on the place Target
	// is: what a restarted daemon finds, which holds at least everything
	// up to the last Sync. nil where the kind has no such thing; the cases
	// that need it are then not run.
	Reopen func(t *testing.T) target.Target
	// MakeUnavailable takes the place away (for a directory mirror,
	// remove its directory or rename it out of Outside), after which
	// Check must return an error for which target.IsDown is true. nil:
	// not run.
	MakeUnavailable func(t *testing.T)
	// Outside is a directory outside the target that must never change:
	// the suite plants entries in it (named victim, victimdir,
	// victimtree, carrying gfid xattrs of the suite's), then compares a
	// snapshot of it before and after every subtest. "" for kinds that
	// keep nothing on this host's disk.
	Outside string
	// TargetDir is the target's own directory when it lies inside
	// Outside; the snapshot leaves it out. A mirror made directly in
	// Outside is the best test: a ".." that escapes its root lands in
	// Outside, where the snapshot sees it.
	TargetDir string
	// Tamper damages the place behind the target's back, for the escape
	// cases; nil where that means nothing for the kind.
	Tamper *Tamper
}

// Tamper is damage a disk-based kind can be dealt. Each hook works on the
// place directly, not through the target; a nil hook's case is not run.
// Paths are slash-separated and relative to the target's root; every
// directory named was made through the target by the suite.
type Tamper struct {
	// ReplaceDirWithSymlink removes the directory at dirPath with its
	// subtree and puts a symlink to `to` (an absolute path outside the
	// target) in its place; index entries are left dangling, as real
	// damage leaves them. (Removed, not moved: a kind that caches
	// directory descriptors would go on writing into a moved directory,
	// wherever it went.)
	ReplaceDirWithSymlink func(t *testing.T, dirPath string, to string)
	// ReplaceStateDirWithSymlink replaces the kind's own directory which
	// (.replfs/limbo, .replfs/tmp, .replfs/gfid for a mirror) with a
	// symlink to `to`, dropping what it held.
	ReplaceStateDirWithSymlink func(t *testing.T, which StateDir, to string)
	// RewritePointer rewrites directory g's gfid-index entry (a mirror's
	// ../../xx/yy/<parent>/<name> symlink) to the raw value to.
	RewritePointer func(t *testing.T, g gfid.GFID, to string)
}

// StateDir names one of a disk kind's own directories.
type StateDir string

const (
	LimboDir StateDir = "limbo" // .replfs/limbo: entries set aside
	TmpDir   StateDir = "tmp"   // .replfs/tmp: new content being written
	IndexDir StateDir = "gfid"  // .replfs/gfid: the gfid index
)

// testCase is one subtest; needs says which harness fields it cannot run
// without (it is then left out, not skipped).
type testCase struct {
	name  string
	needs func(h Harness) bool
	run   func(t *testing.T, f *fixture)
}

// Run runs every case against fresh targets from newTarget.
func Run(t *testing.T, newTarget func(t *testing.T) Harness) {
	probe := newTarget(t)
	probe.Target.Close()
	for _, c := range cases() {
		if c.needs != nil && !c.needs(probe) {
			continue
		}
		t.Run(c.name, func(t *testing.T) { c.run(t, newFixture(t, newTarget)) })
	}
	if probe.Outside != "" && probe.Tamper != nil {
		t.Run("nothing is written outside the target", func(t *testing.T) { runEscapes(t, probe, newTarget) })
	}
}

func cases() []testCase {
	reopen := func(h Harness) bool { return h.Reopen != nil }
	unavailable := func(h Harness) bool { return h.MakeUnavailable != nil }
	return []testCase{
		{"a place never opened is not a target", nil, testNeverOpened},
		{"every file type reads back as it was made", nil, testEveryFileType},
		{"the root lists exactly what was made", nil, testRootListing},
		{"asking for what is not there finds nothing", nil, testAbsent},
		{"a taken name is refused", nil, testTakenName},
		{"an entry holding another gfid is not removed", nil, testOtherGFID},
		{"removing a name that is not there is ErrNotExist", nil, testRemoveAbsent},
		{"a directory that is not empty is not removed", nil, testNonEmptyDir},
		{"unlink and rmdir remove what they name", nil, testRemove},
		{"invalid names are refused and nothing is made", nil, testInvalidNames},
		{"a renamed directory keeps its subtree", nil, testRenameSubtree},
		{"a directory is not moved into itself", nil, testRenameIntoItself},
		{"an entry set aside in limbo comes back by gfid", nil, testAsideAndBack},
		{"EmptyLimbo removes what is left there", nil, testEmptyLimbo},
		{"SetMeta changes only what it is asked to", nil, testSetMeta},
		{"WriteFile replaces content and attributes", nil, testWriteFile},
		{"a new file is invisible until complete", nil, testCreateInvisible},
		{"a file whose source fails is not made", nil, testSourceFails},
		{"a reader never sees a half-replaced file", nil, testAtomicReplace},
		{"a listing hashes the files smaller than asked", nil, testListHashes},
		{"hashes match contenthash (Hasher)", nil, testHasher},
		{"WriteFile replaces the content under every hard-link name (HardLinker)", nil, testHardLinks},
		{"a hard-linked file set aside lives on under its other name (HardLinker)", nil, testLinkInLimbo},
		{"RemoveAll removes a whole subtree (TreeRemover)", nil, testRemoveAll},
		{"Adopt and Repoint of healthy entries change nothing (IndexRepairer)", nil, testIndexRepairer},
		{"applied changes survive a reopen", reopen, testReopen},
		{"Attach changes nothing", nil, testAttachChangesNothing},
		{"a target of another brick is refused", nil, testOtherBrick},
		{"an unavailable target reports itself as such", unavailable, testUnavailable},
		{"a cancelled context stops every call", nil, testCancelled},
	}
}
