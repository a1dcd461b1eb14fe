package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tabnas/tabnas/coordinator"
	"github.com/tabnas/tabnas/dataset"
	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/infra/redact"
	"github.com/tabnas/tabnas/pipeline"
	"github.com/tabnas/tabnas/schemas"
)

func isInputError(err error) bool {
	var in *dataset.InputError
	return errors.As(err, &in) || errors.Is(err, os.ErrNotExist)
}

// serviceFlags are those of the long-running roles.
type serviceFlags struct {
	nats, store, prefix, name string
	cacheMB                   int64
	quiet, jsonLogs           bool
}

func parseService(name string, args []string, withCache bool) (*serviceFlags, error) {
	s := &serviceFlags{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&s.nats, "nats", os.Getenv("TABNAS_NATS_URL"), "NATS URL (default $TABNAS_NATS_URL)")
	fs.StringVar(&s.store, "store", os.Getenv("TABNAS_STORE"), "object store: directory, file:// or s3://bucket/prefix (default $TABNAS_STORE)")
	fs.StringVar(&s.prefix, "prefix", "", "stream and bucket name prefix on NATS (default tabnas)")
	fs.StringVar(&s.name, "name", name+"-"+hostname(), "name in logs and results")
	if withCache {
		fs.Int64Var(&s.cacheMB, "cache-mb", 2048, "shard cache budget in MiB")
	}
	fs.BoolVar(&s.quiet, "quiet", false, "log warnings only")
	fs.BoolVar(&s.jsonLogs, "log-json", false, "JSON logs")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fmt.Printf("usage: tabnas %s --nats URL --store URL [flags]\n", name)
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, bad(err)
	}
	if s.nats == "" {
		return nil, bad(fmt.Errorf("--nats URL is required (a %s serves a distributed run)", name))
	}
	if s.store == "" {
		return nil, bad(errors.New("--store is required"))
	}
	return s, nil
}

func hostname() string {
	h, _ := os.Hostname()
	if h == "" {
		h = "host"
	}
	return fmt.Sprintf("%s-%d", strings.Split(h, ".")[0], os.Getpid())
}

func openService(ctx context.Context, s *serviceFlags) (*pipeline.Env, error) {
	env, err := pipeline.Open(ctx, pipeline.EnvOptions{StoreURL: s.store, Bus: s.nats, Prefix: s.prefix, Name: s.name, Log: newLogger(s.quiet, s.jsonLogs)})
	if err != nil {
		return nil, infra(err)
	}
	return env, nil
}

func cmdEvaluator(ctx context.Context, args []string) error {
	s, err := parseService("evaluator", args, true)
	if err != nil {
		return err
	}
	env, err := openService(ctx, s)
	if err != nil {
		return err
	}
	defer env.Close()
	env.Log.Info("evaluator ready", "name", s.name, "nats", redact.URL(s.nats), "store", redact.URL(env.Store.URL()))
	ev := pipeline.NewEvaluator(env, pipeline.EvaluatorOptions{Name: s.name, CacheBytes: s.cacheMB << 20})
	return infra(ev.Run(ctx))
}

func cmdSampler(ctx context.Context, args []string) error {
	s, err := parseService("sampler", args, false)
	if err != nil {
		return err
	}
	env, err := openService(ctx, s)
	if err != nil {
		return err
	}
	defer env.Close()
	env.Log.Info("sampler ready", "name", s.name, "nats", redact.URL(s.nats))
	return infra(pipeline.NewSampler(env, s.name).Run(ctx, nil))
}

func cmdCoordinator(ctx context.Context, args []string) error {
	o, err := parseRun("coordinator", args, true)
	if err != nil {
		return err
	}
	if o.cfg.Nats == "" {
		o.cfg.Nats = os.Getenv("TABNAS_NATS_URL")
	}
	if o.cfg.Store == "" {
		o.cfg.Store = os.Getenv("TABNAS_STORE")
	}
	if o.cfg.Nats == "" || o.cfg.Store == "" {
		return bad(errors.New("--nats and --store are required (use `tabnas search` for a one-process run)"))
	}
	log := newLogger(o.quiet, false)
	env, err := pipeline.Open(ctx, pipeline.EnvOptions{StoreURL: o.cfg.Store, Bus: o.cfg.Nats, Prefix: o.prefix, Name: "tabnas-coordinator", Log: log})
	if err != nil {
		return infra(err)
	}
	defer env.Close()
	res, err := runSearch(ctx, env, o, log, false)
	if err != nil {
		return err
	}
	return printResult(o, res)
}

func cmdResume(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("resume", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	run := fs.String("run", "", "run id to resume (required)")
	natsURL := fs.String("nats", os.Getenv("TABNAS_NATS_URL"), "NATS URL (empty: the --bus in this process, with local services)")
	busKind := fs.String("bus", pipeline.BusMemory, "without --nats: memory or embedded")
	store := fs.String("store", os.Getenv("TABNAS_STORE"), "object store holding the run's checkpoint (default runs/store)")
	prefix := fs.String("prefix", "", "stream and bucket name prefix")
	evaluators := fs.Int("evaluators", 1, "evaluators in this process (embedded mode)")
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	quiet := fs.Bool("quiet", false, "log warnings only")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
			return err
		}
		return bad(err)
	}
	if *run == "" {
		return bad(errors.New("--run is required"))
	}
	if err := schemas.ValidRunID(*run); err != nil {
		return bad(fmt.Errorf("--run: %w", err))
	}
	if *store == "" {
		*store = "runs/store"
	}
	b := *natsURL
	if b == "" {
		b = *busKind
	}
	if err := pipeline.ValidBus(b); err != nil {
		return bad(err)
	}
	log := newLogger(*quiet, false)
	env, err := pipeline.Open(ctx, pipeline.EnvOptions{StoreURL: *store, Bus: b, Prefix: *prefix, Name: "tabnas-coordinator", Log: log})
	if err != nil {
		return infra(err)
	}
	defer env.Close()
	ck, err := coordinator.LoadCheckpoint(ctx, env.Store, *run)
	if err != nil {
		if errors.Is(err, objstore.ErrNotFound) {
			return bad(err)
		}
		return infra(err)
	}
	if *natsURL == "" {
		svc, err := pipeline.StartServices(ctx, env, *evaluators, true, func(i int) pipeline.EvaluatorOptions {
			return pipeline.EvaluatorOptions{Name: pipeline.EvaluatorName(i)}
		})
		if err != nil {
			return infra(err)
		}
		defer svc.Stop()
	}
	prog := newProgress("", ck.Spec.Search.Steps)
	out, err := coordinator.Run(ctx, coordinator.Config{Bus: env.Bus, Store: env.Store, Log: log, Resume: true, ResumeRun: *run,
		OnStep: prog.step})
	prog.done()
	if err != nil {
		return classify(err)
	}
	res := pipeline.Summarize(out)
	localDir := ""
	if *natsURL == "" {
		localDir = "runs"
	}
	if err := pipeline.Finish(ctx, env, out, &res, localDir); err != nil {
		return infra(fmt.Errorf("saving the model and report: %w", err))
	}
	return printResult(&runOpts{jsonOut: *jsonOut}, &res)
}

func cmdStatus(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	run := fs.String("run", "", "run id (required)")
	natsURL := fs.String("nats", os.Getenv("TABNAS_NATS_URL"), "NATS URL")
	prefix := fs.String("prefix", "", "stream and bucket name prefix")
	watch := fs.Bool("watch", false, "print every change until the run ends")
	if err := fs.Parse(args); err != nil {
		return bad(err)
	}
	if *run == "" || *natsURL == "" {
		return bad(errors.New("--run and --nats are required"))
	}
	if err := schemas.ValidRunID(*run); err != nil {
		return bad(fmt.Errorf("--run: %w", err))
	}
	env, err := pipeline.Open(ctx, pipeline.EnvOptions{Bus: *natsURL, Prefix: *prefix, Name: "tabnas-status", Log: newLogger(true, false)})
	if err != nil {
		return infra(err)
	}
	defer env.Close()
	for {
		st, err := env.Bus.GetStatus(ctx, *run)
		if err != nil {
			return bad(err)
		}
		fmt.Printf("%s  %-10s step %d/%d  P(V) %.3f  baseline %.4f  %s%s\n", st.Updated.Format(time.RFC3339), st.State, st.Step, st.Steps, st.PV, st.Baseline, st.Result, st.Error)
		if !*watch || st.State == "done" || st.State == "failed" {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}
