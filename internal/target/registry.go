package target

import (
	"fmt"
	"strings"
)

// Opener makes the target a spec names (not yet opened: the caller calls
// Open or Attach).
type Opener func(spec string) (Target, error)

// Registry maps a target spec (a path today; replfs://, ec:, s3:// later)
// to the kind that handles it. mount, verify, repair and restore share
// one, built by the command (no package registers itself).
type Registry struct {
	kinds []kind
}

type kind struct {
	name  string
	match func(spec string) bool
	open  Opener
}

// Add registers kind name for the specs match accepts; the first kind
// added that matches a spec gets it.
func (r *Registry) Add(name string, match func(spec string) bool, open Opener) {
	r.kinds = append(r.kinds, kind{name, match, open})
}

// New returns the target spec names.
func (r *Registry) New(spec string) (Target, error) {
	if spec == "" {
		return nil, fmt.Errorf("empty target")
	}
	var names []string
	for _, k := range r.kinds {
		if k.match(spec) {
			return k.open(spec)
		}
		names = append(names, k.name)
	}
	return nil, fmt.Errorf("target %q: not a kind this replfs knows (%s)", spec, strings.Join(names, ", "))
}
