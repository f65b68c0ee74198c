package replicator

import (
	"errors"
	"fmt"

	"github.com/replfs/replfs/internal/contenthash"
	"github.com/replfs/replfs/internal/gfid"
	"github.com/replfs/replfs/internal/target"
)

// The engine's side of the optional target capabilities: each call uses
// the capability when the target has it, else the fallback
// internal/target documents for it.

// errCannot: the target lacks a capability and the engine has no
// fallback for this entry (counted as a failure of the entry).
var errCannot = errors.New("not supported by this target")

func cannot(what string) error { return fmt.Errorf("%s: %w", what, errCannot) }

// parents: without hard links a target holds each name as its own
// inode, so a content update has no other names to find.
func (s *syncer) parents(g gfid.GFID) ([]gfid.GFID, error) {
	if h, ok := s.t.(target.HardLinker); ok {
		return h.Parents(s.ctx, g)
	}
	return nil, nil
}

// link adds a name to non-directory g; without hard links, a regular
// file's name is made as a copy of its own.
func (s *syncer) link(g, parent gfid.GFID, name string) error {
	if h, ok := s.t.(target.HardLinker); ok {
		return h.Link(s.ctx, g, parent, name)
	}
	f, a, err := s.b.openIndex(g)
	if err != nil {
		if isNoEntry(err) {
			return cannot("hard link of a file that is not a regular one")
		}
		return err
	}
	defer f.close()
	return s.createFile(parent, name, g, f, a)
}

func (s *syncer) adopt(parent gfid.GFID, name string, g gfid.GFID) error {
	if x, ok := s.t.(target.IndexRepairer); ok {
		return x.Adopt(s.ctx, parent, name, g)
	}
	return cannot("re-indexing an entry")
}

func (s *syncer) removeAll(parent gfid.GFID, name string, g gfid.GFID) error {
	if r, ok := s.t.(target.TreeRemover); ok {
		return r.RemoveAll(s.ctx, parent, name, g)
	}
	return cannot(fmt.Sprintf("removing directory %s, which has no gfid", name))
}

func (r *repairer) relink(g, parent gfid.GFID, name string) error {
	if h, ok := r.t.(target.HardLinker); ok {
		return h.Relink(r.ctx, g, parent, name)
	}
	return cannot("relinking a hard link")
}

func (r *repairer) repoint(g, parent gfid.GFID, name string) error {
	if x, ok := r.t.(target.IndexRepairer); ok {
		return x.Repoint(r.ctx, g, parent, name)
	}
	return cannot("repointing a directory's index entry")
}

// targetHash: a target that cannot hash where its data is has its
// content reported as not compared (an error of that entry).
func (v *Verifier) targetHash(g gfid.GFID, size int64) (contenthash.Sum, int64, error) {
	if h, ok := v.t.(target.Hasher); ok {
		return h.Hash(v.ctx, g, size)
	}
	return contenthash.Sum{}, 0, cannot("content not compared: hashing")
}

func (v *Verifier) targetHashDir(dir gfid.GFID, reqs []target.HashReq) error {
	if h, ok := v.t.(target.Hasher); ok {
		return h.HashDir(v.ctx, dir, reqs)
	}
	return cannot("content not compared: hashing")
}
