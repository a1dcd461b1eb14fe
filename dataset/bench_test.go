package dataset

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/schemas"
)

// csvBytes is the decompressed size of a source file, the basis of the MB/s figures.
func csvBytes(b *testing.B, path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, zr)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func benchIngest(b *testing.B, rel string, opts Options) {
	path := datasetPath(b, rel)
	size := csvBytes(b, path)
	st := localStore(b)
	b.SetBytes(size) // MB/s of uncompressed CSV text (both passes)
	b.ResetTimer()
	var rows int64
	start := time.Now()
	for i := 0; i < b.N; i++ {
		opts.Overwrite = true
		m, err := Ingest(context.Background(), path, st, "bench", opts)
		if err != nil {
			b.Fatal(err)
		}
		rows += m.Source.Rows
	}
	b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
}

func BenchmarkIngestHiggs(b *testing.B) { benchIngest(b, "higgs/higgs_26k.csv.gz", Options{}) }

func BenchmarkIngestCovertype(b *testing.B) {
	benchIngest(b, "covertype/covertype_197k.csv.gz", Options{})
}

func BenchmarkIngestFashionTrain(b *testing.B) {
	benchIngest(b, "fashion_mnist/fashion_mnist_train.csv.gz", Options{})
}

// BenchmarkReadShard measures fetch + checksum + Parquet decode of one 65,536-row-cap
// covertype training shard from a local-directory store.
func BenchmarkReadShard(b *testing.B) {
	path := datasetPath(b, "covertype/covertype_197k.csv.gz")
	st := localStore(b)
	m, err := Ingest(context.Background(), path, st, "bench", Options{})
	if err != nil {
		b.Fatal(err)
	}
	benchRead(b, st, m.Shards.Train[0], m.FeatureWidth)
}

// BenchmarkReadShardFashion is the wide case: 784 features.
func BenchmarkReadShardFashion(b *testing.B) {
	path := datasetPath(b, "fashion_mnist/fashion_mnist_test.csv.gz")
	st := localStore(b)
	m, err := Ingest(context.Background(), path, st, "bench", Options{})
	if err != nil {
		b.Fatal(err)
	}
	benchRead(b, st, m.Shards.Train[0], m.FeatureWidth)
}

func benchRead(b *testing.B, store objstore.Store, sh schemas.Shard, width int) {
	b.SetBytes(sh.Bytes) // MB/s of shard file bytes
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		_, _, rows, err := ReadShard(context.Background(), store, sh)
		if err != nil || rows != int(sh.Rows) {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(sh.Rows)*float64(b.N)/time.Since(start).Seconds(), "rows/s")
	b.ReportMetric(float64(sh.Rows*int64(width+1)*4)*float64(b.N)/time.Since(start).Seconds()/1e6, "decodedMB/s")
}

// BenchmarkShardCacheHit is the steady state of an evaluator: every shard already cached.
func BenchmarkShardCacheHit(b *testing.B) {
	path := datasetPath(b, "higgs/higgs_26k.csv.gz")
	st := localStore(b)
	m, err := Ingest(context.Background(), path, st, "bench", Options{})
	if err != nil {
		b.Fatal(err)
	}
	c := NewShardCache(st, 1<<30)
	sh := m.Shards.Train[0]
	if _, err := c.Get(context.Background(), sh); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Get(context.Background(), sh); err != nil {
			b.Fatal(err)
		}
	}
}
