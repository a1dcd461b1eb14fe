package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tabnas/tabnas/dataset"
	"github.com/tabnas/tabnas/infra/objstore"
)

func cmdIngest(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	data := fs.String("data", "", "CSV (plain or .gz) or Parquet file, local or s3://bucket/key (required)")
	store := fs.String("store", os.Getenv("TABNAS_STORE"), "destination object store: directory, file:// or s3://bucket/prefix (required)")
	prefix := fs.String("prefix", "", "dataset prefix in the store, e.g. datasets/connect4 (required)")
	target := fs.String("target", "target", "target column")
	task := fs.String("task", "", "force regression, binary or multiclass (default: detected)")
	seed := fs.Uint64("seed", 0, "split seed")
	rows := fs.Int("rows-per-shard", 0, "rows per Parquet shard (default 65536)")
	limit := fs.Int64("limit", 0, "ingest only the first N rows (default: all)")
	cat := fs.String("categorical", "", "comma-separated columns to treat as categorical")
	num := fs.String("numeric", "", "comma-separated columns to treat as numeric")
	ignore := fs.String("ignore", "", "comma-separated columns to drop")
	overwrite := fs.Bool("overwrite", false, "replace an existing dataset at the prefix")
	jsonOut := fs.Bool("json", false, "print the manifest as JSON")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fmt.Println("usage: tabnas ingest --data FILE --store URL --prefix PREFIX [flags]")
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
			return err
		}
		return bad(err)
	}
	if *data == "" || *store == "" || *prefix == "" {
		return bad(errors.New("--data, --store and --prefix are required"))
	}
	if err := checkPositive(fs, "rows-per-shard", "limit"); err != nil {
		return err
	}
	if err := checkData("--data", *data); err != nil {
		return err
	}
	if err := objstore.ValidateKey(strings.TrimSuffix(*prefix, "/")); err != nil {
		return bad(fmt.Errorf("--prefix %s: %w", *prefix, err))
	}
	st, err := objstore.Open(ctx, *store, objstore.Options{})
	if err != nil {
		return bad(err)
	}
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	m, err := dataset.Ingest(ctx, *data, st, *prefix, dataset.Options{Target: *target, Task: *task, Seed: *seed, RowsPerShard: *rows,
		RowLimit: *limit, Categorical: split(*cat), Numeric: split(*num), Ignore: split(*ignore), Overwrite: *overwrite,
		OpenStore: func(ctx context.Context, url string) (objstore.Store, error) {
			return objstore.Open(ctx, url, objstore.Options{})
		},
		Logger: newLogger(false, false)})
	if errors.Is(err, dataset.ErrExists) {
		return bad(fmt.Errorf("--prefix %s: %s already holds a dataset there; pass --overwrite to replace it", *prefix, st.URL()))
	}
	if err != nil {
		return classify(err)
	}
	if *jsonOut {
		out, _ := json.MarshalIndent(m, "", "  ")
		fmt.Println(string(out))
		return nil
	}
	fmt.Printf("ingested %s into %s/%s: task %s, %d features, rows train %d / val %d / test %d, %d+%d+%d shards\n",
		*data, st.URL(), *prefix, m.Target.Task, m.FeatureWidth, m.Split.Rows.Train, m.Split.Rows.Val, m.Split.Rows.Test,
		len(m.Shards.Train), len(m.Shards.Val), len(m.Shards.Test))
	fmt.Printf("search it with: tabnas search --data dataset:%s --store %s --max-params N\n", *prefix, *store)
	return nil
}
