// Package fs is the replfs FUSE node tree: a passthrough of a backing
// directory (the brick) built on go-fuse's loopback nodes.
//
// Invariants:
//   - every change made through the mount is recorded in the journal before
//     it is applied to the brick (intent first), inside a journal
//     Enter/Exit section so that a record is never sealed into a closed
//     segment while its operation is still in flight;
//   - every inode carries a gfid in an xattr, and the gfid index under
//     .replfs/gfid holds exactly one entry per live inode (a hard link for
//     non-directories, a parent pointer symlink for directories);
//   - .replfs and replfs's own xattrs are never visible or changeable
//     through the mount.
//
// Because the index adds one hard link to every non-directory, the link
// count reported through the mount is the brick's minus one.
package fs
