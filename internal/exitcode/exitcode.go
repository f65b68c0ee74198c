// Package exitcode holds replfs's documented process exit codes, so that
// scripts and mount(8) get meaningful statuses.
package exitcode

import "errors"

const (
	OK = 0
	// Failure: the command failed (bad brick, mount failed, I/O error).
	Failure = 1
	// Usage: the command line or a mount option is malformed.
	Usage = 2
)

// UsageError marks an error caused by the command line.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Of maps an error to its exit code.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var u UsageError
	if errors.As(err, &u) {
		return Usage
	}
	return Failure
}
