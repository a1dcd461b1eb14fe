package dataset

import (
	"context"
	"os"
	"testing"

	"github.com/tabnas/tabnas/infra/objstore/objstoretest"
	"github.com/tabnas/tabnas/schemas"
)

// TestS3RoundTrip ingests from an s3:// source into an S3 store on the real test server and
// reads the shards back through the cache; the shards must be byte-identical to a local
// ingest of the same file. Skipped (loudly) without the test server variables.
func TestS3RoundTrip(t *testing.T) {
	path := datasetPath(t, "higgs/higgs_26k.csv.gz")
	s3 := objstoretest.NewS3(t)
	bucket, sopts := objstoretest.S3Options(t)
	ctx := context.Background()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if err := s3.Put(ctx, "raw/higgs.csv.gz", f, st.Size()); err != nil {
		t.Fatal(err)
	}
	src := "s3://" + bucket + "/" + s3.Prefix() + "raw/higgs.csv.gz"
	opts := Options{Seed: 4, RowsPerShard: 8000, StoreOptions: sopts}
	m, err := Ingest(ctx, src, s3, "datasets/higgs", opts)
	if err != nil {
		t.Fatal(err)
	}
	local, err := Ingest(ctx, path, localStore(t), "datasets/higgs", opts)
	if err != nil {
		t.Fatal(err)
	}
	if m.Source.SHA256 != local.Source.SHA256 || m.Source.Path != src {
		t.Fatalf("source %+v vs %+v", m.Source, local.Source)
	}
	d, err := OpenDataset(ctx, s3, "datasets/higgs")
	if err != nil {
		t.Fatal(err)
	}
	c := NewShardCache(s3, 1<<30)
	var rows int64
	for _, name := range schemas.SplitNames {
		for i, sh := range d.Shards(name) {
			if sh.SHA256 != local.Shards.Get(name)[i].SHA256 {
				t.Errorf("%s: S3 and local shards differ", sh.Key)
			}
			sd, err := c.Get(ctx, sh)
			if err != nil {
				t.Fatal(err)
			}
			rows += int64(sd.Rows)
		}
	}
	if rows != 25975 {
		t.Fatalf("%d rows read back", rows)
	}
}
