package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ulat-dev/ulat/agent"
)

// agentGCPercent is the agent's GOGC.
const agentGCPercent = 50

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "time functions continuously in every process that runs the programs --config names, for Prometheus",
		Description: `Serves /metrics (ulat_function_duration_seconds, classic and native
buckets), /report.json (as ulat trace writes it) and /healthz, and pushes
the same series over OTLP when the config has an otlp section. SIGHUP
reloads the config; SIGINT and SIGTERM end the agent. See docs/agent.md.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Required: true, Usage: "the YAML config `FILE`"},
			&cli.BoolFlag{Name: "check", Usage: "check the config and exit"},
		},
		Action: agentAction,
	}
}

func agentAction(c *cli.Context) error {
	cfg, err := agent.Load(c.String("config"))
	if err != nil {
		return usagef("%w", err)
	}
	if c.Bool("check") {
		otlp := ""
		if cfg.OTLP != nil {
			otlp = fmt.Sprintf(", OTLP push to %s every %s", cfg.OTLP.Endpoint, cfg.OTLP.Interval)
		}
		fmt.Fprintf(c.App.Writer, "%s: valid, %d %s%s\n", c.String("config"), len(cfg.Targets), plural(len(cfg.Targets), "target", "targets"), otlp)
		return nil
	}
	// An agent at rest allocates little; its scrapes make megabytes of
	// garbage, which at Go's default the heap could grow by as much as
	// it holds live: half of that is the peak the agent's memory goal
	// is judged by (make bench: 14 MB over its memory at rest instead
	// of 21-24). GOGC, when set, wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(agentGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reload := make(chan struct{}, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	log := slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))
	return agent.Run(ctx, c.String("config"), agent.Options{Log: log, Version: version, Reload: reload})
}
