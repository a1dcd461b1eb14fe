// Command tabnas searches the best feed-forward network for a tabular dataset under hard
// resource limits (TabNAS), in one process or as a distributed pipeline over NATS JetStream
// and S3-compatible storage. Run "tabnas help" for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/tabnas/tabnas/dataset"
	"github.com/tabnas/tabnas/infra/redact"
	"github.com/tabnas/tabnas/internal/search"
)

// Exit codes a scheduler can act on.
const (
	exitOK         = 0
	exitFailure    = 1 // anything else
	exitBadInput   = 2 // flags, spec file, data
	exitInfeasible = 3 // no architecture meets the budget
	exitInfra      = 4 // NATS, object store, a service
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

// commands lists the core commands; other files register more in extraCommands.
func commands() []command {
	core := []command{
		{"search", "run a whole search in one process (embedded NATS, local store)", cmdSearch},
		{"ingest", "ingest a CSV/Parquet file into Parquet shards and a manifest", cmdIngest},
		{"coordinator", "run the coordinator of a distributed search", cmdCoordinator},
		{"evaluator", "run an evaluator (scale out by starting more)", cmdEvaluator},
		{"sampler", "run the sampler (feasibility, latency, P(V) estimates)", cmdSampler},
		{"resume", "continue a run from its last checkpoint", cmdResume},
		{"status", "show a run's status", cmdStatus},
		{"toy", "reproduce the TabNAS toy study over many seeds", cmdToy},
	}
	return append(core, extraCommands...)
}

// extraCommands are registered by other files of this command.
var extraCommands []command

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tabnas COMMAND [flags]   (tabnas COMMAND -h for a command's flags)")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nexit codes: 0 done, 2 bad input, 3 infeasible budget, 4 infrastructure failure, 1 other")
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(os.Stdout)
		if len(args) == 0 {
			return exitBadInput
		}
		return exitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:])
			if err == nil {
				return exitOK
			}
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			fmt.Fprintf(os.Stderr, "tabnas %s: %s\n", c.name, redact.Text(err.Error()))
			return exitCode(err)
		}
	}
	fmt.Fprintf(os.Stderr, "tabnas: unknown command %q\n\n", args[0])
	usage(os.Stderr)
	return exitBadInput
}

// badInput marks errors caused by what the user gave.
type badInput struct{ err error }

func (b badInput) Error() string { return b.err.Error() }
func (b badInput) Unwrap() error { return b.err }

func bad(err error) error {
	if err == nil {
		return nil
	}
	return badInput{err}
}

// infraError marks failures of NATS, the object store or a service.
type infraError struct{ err error }

func (i infraError) Error() string { return i.err.Error() }
func (i infraError) Unwrap() error { return i.err }

func infra(err error) error {
	if err == nil {
		return nil
	}
	return infraError{err}
}

func exitCode(err error) int {
	var bi badInput
	var ie infraError
	var in *dataset.InputError
	switch {
	case errors.Is(err, search.ErrInfeasibleBudget):
		return exitInfeasible
	case errors.As(err, &bi), errors.As(err, &in):
		return exitBadInput
	case errors.As(err, &ie):
		return exitInfra
	}
	return exitFailure
}

func newLogger(quiet bool, jsonLogs bool) *slog.Logger {
	level := slog.LevelInfo
	if quiet {
		level = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redact.ReplaceAttr}
	if jsonLogs {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
