package target

import (
	"errors"
	"fmt"
	"io/fs"
)

var (
	// ErrNotExist: the target has no such entry, or no inode with that
	// gfid (or the name holds another one, for removals).
	ErrNotExist = fs.ErrNotExist
	// ErrExist: the name is taken (by another gfid, for creations and
	// renames), or the entry holds another gfid than the call names.
	ErrExist = fs.ErrExist
	// ErrNotTarget: a place that is not a replfs target of any brick.
	ErrNotTarget = errors.New("not a replfs target")
	// ErrOtherBrick: a target of another brick.
	ErrOtherBrick = errors.New("of another brick")
	// ErrIndexStale: a directory's gfid-index entry does not lead to it.
	ErrIndexStale = errors.New("gfid index entry leads elsewhere")
)

// Why a whole target is down.
type Reason string

const (
	Unavailable Reason = "unavailable" // gone, unreachable, failing I/O
	Full        Reason = "full"        // no space or quota left
	ReadOnly    Reason = "read-only"
)

// DownError is an error that takes the whole target down for now: no
// retry of one entry can fix it. The engine stops the batch, shows the
// target Faulty, and retries later; any other error concerns one entry
// only (it is counted, shown in status, and the rest goes on).
type DownError struct {
	Reason Reason
	Err    error
}

func (e *DownError) Error() string { return fmt.Sprintf("target %s: %v", e.Reason, e.Err) }
func (e *DownError) Unwrap() error { return e.Err }

// Down marks err as taking the whole target down for reason.
func Down(reason Reason, err error) error {
	if err == nil {
		return nil
	}
	var d *DownError
	if errors.As(err, &d) {
		return err
	}
	return &DownError{Reason: reason, Err: err}
}

// IsDown reports whether err takes the whole target down.
func IsDown(err error) bool {
	var d *DownError
	return errors.As(err, &d)
}
