package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/replfs/replfs/internal/target"
	"github.com/replfs/replfs/replicator"
)

// targetKinds is the one map from a target spec to its kind, shared by mount,
// verify and repair: a directory path is a mirror (the kinds to come,
// replfs://, ec:, s3://, are added here).
func targetKinds() *target.Registry {
	var r target.Registry
	r.Add("mirror (a directory path)", isPath, func(spec string) (target.Target, error) {
		abs, err := filepath.Abs(spec)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", spec, err)
		}
		return replicator.NewMirror(filepath.Clean(abs)), nil
	})
	return &r
}

// isPath: a spec without a scheme.
func isPath(spec string) bool { return !strings.Contains(spec, "://") }
