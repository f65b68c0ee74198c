// Command replfs mounts a brick through the replfs FUSE layer and inspects
// its journal and gfids. It also serves as a mount helper: mount(8) runs it
// as "mount.replfs BRICK DIR -o OPTS", and fuse3's mount.fuse3 runs it as
// "replfs BRICK DIR -o OPTS" for fstab entries of type fuse.replfs.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/replfs/replfs/internal/exitcode"
)

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "replfs",
		Short:         "a replicating FUSE filesystem layer",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return exitcode.UsageError{Err: err}
	})
	root.AddCommand(newMountCmd(), newUmountCmd(), newJournalCmd(), newInspectCmd(),
		newStatusCmd(), newCheckpointCmd(), newPauseCmd(true), newPauseCmd(false),
		newVerifyCmd(), newRepairCmd())
	return root
}

func main() {
	args := helperArgs(filepath.Base(os.Args[0]), os.Args[1:])
	root := newRoot()
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		var quiet exitcode.Status
		if !errors.As(err, &quiet) {
			fmt.Fprintf(os.Stderr, "replfs: %v\n", oneLine(err))
		}
		os.Exit(exitcode.Of(err))
	}
}

// helperArgs turns the mount-helper calling conventions into a mount
// subcommand: "mount.replfs SRC DIR [-sfnv] [-o OPTS]" and, from
// mount.fuse3, "replfs SRC DIR -o OPTS".
func helperArgs(argv0 string, args []string) []string {
	if argv0 == "mount.replfs" || argv0 == "mount.fuse.replfs" {
		out := []string{"mount"}
		for i := 0; i < len(args); i++ {
			switch a := args[i]; {
			case a == "-s" || a == "-n" || a == "-v":
				// sloppy, no-mtab, verbose: nothing to do for replfs.
			case a == "-f":
				out = append(out, "--fake")
			case a == "-N" || a == "-t":
				i++ // namespace / type arguments
			default:
				out = append(out, a)
			}
		}
		return out
	}
	if len(args) >= 2 && !strings.HasPrefix(args[0], "-") && !isSubcommand(args[0]) {
		return append([]string{"mount"}, args...)
	}
	return args
}

func isSubcommand(s string) bool {
	for _, c := range newRoot().Commands() {
		if c.Name() == s || c.HasAlias(s) {
			return true
		}
	}
	return s == "help" || s == "completion"
}

func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}
