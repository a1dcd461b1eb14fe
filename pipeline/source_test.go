package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/infra/objstore/objstoretest"
)

// syntheticCSV is a small classification table whose rows depend on n and flip.
func syntheticCSV(n int, flip bool) []byte {
	var b bytes.Buffer
	b.WriteString("x1,x2,color,target\n")
	for i := range n {
		label := (i * 7 / 3) % 2
		if flip && i == n/2 {
			label = 1 - label
		}
		fmt.Fprintf(&b, "%d,%d.5,%s,%d\n", i%97, (i*31)%89, []string{"red", "green", "blue"}[i%3], label)
	}
	return b.Bytes()
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// take returns what was logged since the last call.
func (l *logBuffer) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

// TestEnsureDatasetS3ObjectReplaced: a nightly job reads s3://…/export.csv, which is replaced
// between runs. The dataset cache must follow the object's version, not its URL: the same
// object is reused, a replaced one (more rows, or the same size with other bytes) is ingested
// afresh, and the log says which, with the version.
func TestEnsureDatasetS3ObjectReplaced(t *testing.T) {
	raw := objstoretest.NewS3(t)   // where the export lands
	store := objstoretest.NewS3(t) // the run's object store
	bucket, sopts := objstoretest.S3Options(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var logs logBuffer
	env := &Env{Store: store, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	data := "s3://" + bucket + "/" + raw.Prefix() + "exports/nightly.csv"
	opts := DatasetOptions{Data: data, RowsPerShard: 500}
	opts.Ingest.StoreOptions = sopts

	upload := func(b []byte) objstore.Info {
		t.Helper()
		if err := raw.Put(ctx, "exports/nightly.csv", bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
		info, err := raw.Stat(ctx, "exports/nightly.csv")
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	ensure := func(wantRows int64, wantLog string, info objstore.Info) (prefix, sha string) {
		t.Helper()
		ds, err := EnsureDataset(ctx, env, opts)
		if err != nil {
			t.Fatal(err)
		}
		out := logs.take()
		if got := ds.Manifest.Source.Rows; got != wantRows {
			t.Errorf("dataset %s has %d source rows, want %d (stale data?)\nlog:\n%s", ds.Prefix, got, wantRows, out)
		}
		if !strings.Contains(out, wantLog) || !strings.Contains(out, "source.etag="+info.ETag) {
			t.Errorf("log does not say %q with etag %s:\n%s", wantLog, info.ETag, out)
		}
		if ds.Manifest.Source.Bytes != info.Size {
			t.Errorf("manifest says %d source bytes, the object has %d", ds.Manifest.Source.Bytes, info.Size)
		}
		return ds.Prefix, ds.Manifest.Source.SHA256
	}

	v1 := upload(syntheticCSV(400, false))
	p1, sha1 := ensure(400, "dataset ingested", v1)
	if p, _ := ensure(400, "dataset reused", v1); p != p1 {
		t.Fatalf("unchanged object: dataset %s, then %s", p1, p)
	}

	v2 := upload(syntheticCSV(1200, false))
	p2, sha2 := ensure(1200, "dataset ingested", v2)
	if p2 == p1 || sha2 == sha1 {
		t.Fatalf("replaced object reused the old dataset: %s (sha %s) vs %s (sha %s)", p2, sha2, p1, sha1)
	}

	// Same size, one label flipped: only the ETag (and time) tell the versions apart.
	v3 := upload(syntheticCSV(1200, true))
	if v3.Size != v2.Size {
		t.Fatalf("test data: sizes %d and %d differ", v3.Size, v2.Size)
	}
	p3, sha3 := ensure(1200, "dataset ingested", v3)
	if p3 == p2 || sha3 == sha2 {
		t.Fatalf("same-size replacement reused the old dataset %s", p2)
	}
	if p, _ := ensure(1200, "dataset reused", v3); p != p3 {
		t.Fatalf("unchanged object: dataset %s, then %s", p3, p)
	}
}

// TestEnsureDatasetLocalFileByContent: a local file stays keyed on its content, whatever its
// modification time.
func TestEnsureDatasetLocalFileByContent(t *testing.T) {
	ctx := context.Background()
	st, err := objstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	env := &Env{Store: st, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	file := t.TempDir() + "/data.csv"
	write := func(b []byte, mtime time.Time) {
		t.Helper()
		if err := writeFileTimes(file, b, mtime); err != nil {
			t.Fatal(err)
		}
	}
	opts := DatasetOptions{Data: file, RowsPerShard: 500}
	write(syntheticCSV(300, false), time.Unix(1_700_000_000, 0))
	a, err := EnsureDataset(ctx, env, opts)
	if err != nil {
		t.Fatal(err)
	}
	write(syntheticCSV(300, false), time.Unix(1_800_000_000, 0)) // touched, same bytes
	b, err := EnsureDataset(ctx, env, opts)
	if err != nil {
		t.Fatal(err)
	}
	if a.Prefix != b.Prefix || !strings.Contains(logs.take(), "dataset reused") {
		t.Fatalf("same content: datasets %s and %s", a.Prefix, b.Prefix)
	}
	write(syntheticCSV(300, true), time.Unix(1_700_000_000, 0)) // other bytes, same size and time
	c, err := EnsureDataset(ctx, env, opts)
	if err != nil {
		t.Fatal(err)
	}
	if c.Prefix == a.Prefix || !strings.Contains(logs.take(), "dataset ingested") {
		t.Fatalf("changed content reused dataset %s", a.Prefix)
	}
}

func writeFileTimes(name string, b []byte, mtime time.Time) error {
	if err := os.WriteFile(name, b, 0o644); err != nil {
		return err
	}
	return os.Chtimes(name, mtime, mtime)
}
