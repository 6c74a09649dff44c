package main

import (
	"fmt"

	bpf "github.com/aquasecurity/libbpfgo"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the versions of ulat, libbpf and the running kernel",
		Action: func(c *cli.Context) error {
			var u unix.Utsname
			kernel := "unknown"
			if err := unix.Uname(&u); err == nil {
				kernel = unix.ByteSliceToString(u.Release[:])
			}
			fmt.Fprintf(c.App.Writer, "ulat %s\nlibbpf %s (linked statically, API %s)\nkernel %s\n",
				version, libbpfVersion, bpf.LibbpfVersionString(), kernel)
			return nil
		},
	}
}
