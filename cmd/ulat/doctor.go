package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ulat-dev/ulat/doctor"
)

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check that this machine, this user and --pid's process can be traced, and say what to fix",
		Description: `Checks the kernel (version, BTF, uprobes, uprobe_multi, BPF cookies), the
privileges (capabilities, memlock), then loads ulat's BPF object and attaches
a probe to ulat itself. With --pid, also checks that the process can be read
and whether a seccomp filter there can interfere with uretprobes.
Exit status 0 when nothing FAILs, 1 otherwise.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "pid", Aliases: []string{"p"}, Usage: "also check this process"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "show libbpf's log while loading"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return usagef("doctor takes no arguments (got %q): ulat doctor [--pid PID]", c.Args().First())
			}
			pid := c.Int("pid")
			if pid < 0 {
				return usagef("--pid %d: must be a process id", pid)
			}
			results := doctor.Run(doctor.Options{Pid: pid, Verbose: c.Bool("verbose")})
			for _, r := range results {
				fmt.Fprintln(c.App.Writer, r)
			}
			if n := doctor.Failed(results); n > 0 {
				return fmt.Errorf("%d of %d checks failed", n, len(results))
			}
			return nil
		},
	}
}
