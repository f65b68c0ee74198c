// Package journal records every change made through a replfs mount, so
// that replicators can replay the changes elsewhere, and keeps the record
// until every consumer has applied it.
//
// Invariants:
//
//   - Intent first: a record is written (write(2)) before the operation it
//     describes is applied to the brick. A crash can leave a record whose
//     operation never happened, never an operation without a record.
//   - A record is never sealed into a closed segment while the operation it
//     describes is still in flight: operations run between Enter and Exit,
//     and Rollover waits for all of them.
//   - A closed segment is immutable and fsynced, and its directory entry is
//     fsynced; it is only ever deleted whole, by retention.
//   - Seqs are assigned by the journal, start at 1 and increase by exactly
//     one per written record, across segments; a closed segment named
//     seg-F-L.rjl holds exactly the records F..L.
//
// # On-disk format (version 1)
//
// A journal is a directory of segment files. The segment being written is
// seg-<F>.open, where F (%020d) is the seq its first record gets. Sealing
// fsyncs it and renames it to seg-<F>-<L>.rjl (L: its last seq), then
// fsyncs the directory, so a plain listing orders segments by F.
//
// Each segment starts with an 8-byte header: the magic "RPLJ", the format
// version as a little-endian uint16, and two reserved zero bytes. Records
// follow, each framed as
//
//	uint32 LE  payload length (> 0)
//	uint32 LE  CRC32C (Castagnoli) of the payload
//	payload    (see Encode)
//	zero padding to the next multiple of 8
//
// Frames start on 8-byte boundaries, so the length word never straddles a
// sector and cannot be torn. A bad frame in a closed segment is corruption
// (ErrCorrupt, naming the file and offset). In the open segment left by a
// crash, everything from the first bad frame to the end of the file is a
// torn tail: Open copies it to <name>.torn-<unix seconds>, truncates it,
// logs a warning and seals what is left.
//
// A reader of a newer format version refuses the segment with a clear
// error; a format change must bump the version and keep reading version 1.
//
// Consumers (replication targets) register how far they have applied in
// consumers.json, which retention consults before deleting a segment.
package journal
