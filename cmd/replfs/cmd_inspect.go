package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pkg/xattr"
	"github.com/spf13/cobra"

	"github.com/replfs/replfs/fs"
	"github.com/replfs/replfs/internal/exitcode"
	"github.com/replfs/replfs/internal/gfid"
)

type inspection struct {
	Path      string `json:"path"`
	BrickPath string `json:"brick_path"`
	GFID      string `json:"gfid"`
	Xtime     string `json:"xtime,omitempty"`
	Index     string `json:"index"`
	IndexOK   bool   `json:"index_ok"`
}

func newInspectCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "inspect PATH...",
		Short: "show the gfid, xtime and gfid-index entry of files in a replfs mount or brick",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return exitcode.UsageError{Err: fmt.Errorf("inspect needs at least one PATH")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			for _, p := range args {
				in, err := inspect(p)
				if err != nil {
					return err
				}
				if asJSON {
					b, _ := json.Marshal(in)
					fmt.Println(string(b))
					continue
				}
				fmt.Printf("path:   %s\nbrick:  %s\ngfid:   %s\nxtime:  %s\nindex:  %s (%s)\n", in.Path, in.BrickPath, in.GFID,
					firstNonEmpty(in.Xtime, "-"), in.Index, map[bool]string{true: "ok", false: "MISSING"}[in.IndexOK])
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func inspect(p string) (inspection, error) {
	brick, rel, err := locate(p)
	if err != nil {
		return inspection{}, err
	}
	bp := filepath.Join(brick, rel)
	if _, err := os.Lstat(bp); err != nil {
		return inspection{}, fmt.Errorf("%s: %w", p, err)
	}
	in := inspection{Path: p, BrickPath: bp}
	var raw []byte
	for _, name := range []string{gfid.XattrTrusted, gfid.XattrUser} {
		if raw, err = xattr.LGet(bp, name); err == nil {
			break
		}
	}
	g, err := gfid.FromBytes(raw)
	if err != nil {
		return inspection{}, fmt.Errorf("%s has no gfid yet (it predates the mount and was never looked up or changed)", p)
	}
	in.GFID = g.String()
	for _, name := range []string{gfid.XtimeTrusted, gfid.XtimeUser} {
		if v, err := xattr.LGet(bp, name); err == nil {
			if ns, err := fs.DecodeXtime(v); err == nil {
				in.Xtime = time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
			}
			break
		}
	}
	in.Index = g.IndexPath()
	if fi, err := os.Lstat(filepath.Join(brick, in.Index)); err == nil {
		bfi, _ := os.Lstat(bp)
		if fi.Mode()&os.ModeSymlink != 0 && bfi.IsDir() {
			r, err := fs.DirPath(brick, g)
			in.IndexOK = err == nil && filepath.Clean(r) == filepath.Clean(rel)
		} else {
			in.IndexOK = os.SameFile(fi, bfi)
		}
	}
	return in, nil
}
