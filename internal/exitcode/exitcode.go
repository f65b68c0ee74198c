// Package exitcode holds replfs's documented process exit codes, so that
// scripts and mount(8) get meaningful statuses.
package exitcode

import (
	"errors"
	"fmt"
)

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

// Coded ends a command with its own exit code and message (verify and
// repair: 1 differences, 2 errors).
type Coded struct {
	Code int
	Err  error
}

func (e Coded) Error() string { return e.Err.Error() }
func (e Coded) Unwrap() error { return e.Err }

// Status ends a command with a code and no message: the command has
// printed its result already.
type Status int

func (s Status) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

// Of maps an error to its exit code.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var s Status
	if errors.As(err, &s) {
		return int(s)
	}
	var c Coded
	if errors.As(err, &c) {
		return c.Code
	}
	var u UsageError
	if errors.As(err, &u) {
		return Usage
	}
	return Failure
}
