package journal

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/replfs/replfs/internal/gfid"
)

// Format returns the one-line text form of r:
//
//	<seq> <time RFC3339Nano UTC> <kind> <gfid> <OP> <details>
//
// Names, symlink targets and xattr names that contain spaces, control
// characters or invalid UTF-8 (or start with a quote) are shown quoted,
// Go style.
func Format(r *Record) string {
	b := make([]byte, 0, 192)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, ' ')
	b = time.Unix(0, r.Time).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, ' ', byte(r.Kind()), ' ')
	b = append(b, r.GFID.String()...)
	b = append(b, ' ')
	b = append(b, r.Op.String()...)
	switch r.Op {
	case OpCreate, OpMkdir, OpMknod:
		b = appendEntry(b, r.Parent, r.Name)
		b = fmt.Appendf(b, " mode=%#o uid=%d gid=%d", r.Mode, r.UID, r.GID)
		if r.Op == OpMknod {
			b = fmt.Appendf(b, " rdev=%d", r.Rdev)
		}
	case OpSymlink:
		b = appendEntry(b, r.Parent, r.Name)
		b = append(b, " -> "...)
		b = appendName(b, r.Target)
		b = fmt.Appendf(b, " uid=%d gid=%d", r.UID, r.GID)
	case OpLink, OpUnlink, OpRmdir:
		b = appendEntry(b, r.Parent, r.Name)
	case OpRename:
		b = appendEntry(b, r.Parent, r.Name)
		b = appendEntry(b, r.Parent2, r.Name2)
		if r.Flags != 0 {
			b = fmt.Appendf(b, " flags=%d", r.Flags)
		}
	case OpSetattr:
		if r.Mask != 0 {
			b = append(b, ' ')
			b = append(b, maskString(r.Mask)...)
		}
	case OpSetxattr, OpRemovexattr:
		b = append(b, ' ')
		b = appendName(b, r.Xattr)
	}
	return string(b)
}

func appendEntry(b []byte, parent gfid.GFID, name string) []byte {
	b = append(b, ' ')
	b = append(b, parent.String()...)
	b = append(b, '/')
	return appendName(b, name)
}

func appendName(b []byte, s string) []byte {
	if needsQuote(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func needsQuote(s string) bool {
	if !utf8.ValidString(s) || strings.HasPrefix(s, `"`) {
		return true
	}
	for _, c := range s {
		if c == ' ' || !unicode.IsPrint(c) {
			return true
		}
	}
	return false
}

var maskNames = []struct {
	bit  uint32
	name string
}{{AttrMode, "mode"}, {AttrOwner, "owner"}, {AttrTimes, "times"}, {AttrSize, "size"}}

// maskString names the Attr* bits of m, e.g. "mode,times"; unknown bits
// are shown in hex.
func maskString(m uint32) string {
	var parts []string
	for _, n := range maskNames {
		if m&n.bit != 0 {
			parts = append(parts, n.name)
			m &^= n.bit
		}
	}
	if m != 0 {
		parts = append(parts, fmt.Sprintf("%#x", m))
	}
	return strings.Join(parts, ",")
}

// jsonRecord is the JSON form of a record written by Dump. Invalid UTF-8
// in names is replaced by U+FFFD there; the text form keeps it exact.
type jsonRecord struct {
	Seq     uint64 `json:"seq"`
	Time    string `json:"time"`
	Kind    string `json:"kind"`
	Op      string `json:"op"`
	GFID    string `json:"gfid,omitempty"`
	Parent  string `json:"parent,omitempty"`
	Name    string `json:"name,omitempty"`
	Parent2 string `json:"parent2,omitempty"`
	Name2   string `json:"name2,omitempty"`
	Mode    uint32 `json:"mode,omitempty"`
	UID     uint32 `json:"uid,omitempty"`
	GID     uint32 `json:"gid,omitempty"`
	Rdev    uint64 `json:"rdev,omitempty"`
	Flags   uint32 `json:"flags,omitempty"`
	Mask    uint32 `json:"mask,omitempty"`
	Target  string `json:"target,omitempty"`
	Xattr   string `json:"xattr,omitempty"`
}

func gfidString(g gfid.GFID) string {
	if g.IsZero() {
		return ""
	}
	return g.String()
}

func toJSON(r *Record) jsonRecord {
	return jsonRecord{
		Seq: r.Seq, Time: time.Unix(0, r.Time).UTC().Format(time.RFC3339Nano),
		Kind: string(rune(r.Kind())), Op: r.Op.String(),
		GFID: gfidString(r.GFID), Parent: gfidString(r.Parent), Name: r.Name,
		Parent2: gfidString(r.Parent2), Name2: r.Name2,
		Mode: r.Mode, UID: r.UID, GID: r.GID, Rdev: r.Rdev, Flags: r.Flags, Mask: r.Mask,
		Target: r.Target, Xattr: r.Xattr,
	}
}

// Dump writes every record of the journal in dir (closed and open
// segments) with Seq >= from to w, one per line: the Format text form,
// or one JSON object per line if asJSON.
func Dump(w io.Writer, dir string, from uint64, asJSON bool) error {
	rd, err := NewReader(dir, from, ReaderOptions{IncludeOpen: true})
	if err != nil {
		return err
	}
	defer rd.Close()
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			bw.Flush()
			return fmt.Errorf("dump journal: %w", err)
		}
		if asJSON {
			err = enc.Encode(toJSON(&rec))
		} else {
			_, err = fmt.Fprintln(bw, Format(&rec))
		}
		if err != nil {
			return fmt.Errorf("dump journal: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("dump journal: %w", err)
	}
	return nil
}
