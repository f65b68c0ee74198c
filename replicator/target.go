package replicator

import (
	"golang.org/x/sys/unix"

	"github.com/replfs/replfs/internal/target"
)

// attrOf is the target.Attr of a stat result.
func attrOf(st *unix.Stat_t) target.Attr { return target.AttrOf(st) }
