package dataset

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/tabnas/tabnas/schemas"
)

// TestShardCacheSteadyState: after one pass over the shards, further passes read nothing.
func TestShardCacheSteadyState(t *testing.T) {
	st, m := ingestSmall(t)
	ctx := context.Background()
	c := NewShardCache(st, 1<<30)
	all := append(append(append([]schemas.Shard{}, m.Shards.Train...), m.Shards.Val...), m.Shards.Test...)
	var total int64
	for _, sh := range all {
		d, err := c.Get(ctx, sh)
		if err != nil {
			t.Fatal(err)
		}
		if d.Rows != int(sh.Rows) || d.Features != m.FeatureWidth {
			t.Fatalf("%s: %d×%d", sh.Key, d.Rows, d.Features)
		}
		total += sh.Bytes
	}
	gets := st.getCount()
	for pass := 0; pass < 5; pass++ {
		for _, sh := range all {
			if _, err := c.Get(ctx, sh); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := c.Stats()
	if st.getCount() != gets || s.BytesRead != total || s.Misses != int64(len(all)) || s.Hits != int64(5*len(all)) || s.Evictions != 0 {
		t.Fatalf("steady state read from the store: gets %d→%d, stats %+v", gets, st.getCount(), s)
	}
}

func TestShardCacheLRU(t *testing.T) {
	st, m := ingestSmall(t)
	ctx := context.Background()
	a, b, cc := m.Shards.Train[0], m.Shards.Train[1], m.Shards.Train[2]
	d, err := NewShardCache(st, 1<<30).Get(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	one := d.bytes()
	c := NewShardCache(st, 2*one+one/2) // room for two shards
	for _, sh := range []schemas.Shard{a, b, a, cc} {
		if _, err := c.Get(ctx, sh); err != nil {
			t.Fatal(err)
		}
	}
	// c evicted b, the least recently used.
	gets := st.getCount()
	if _, err := c.Get(ctx, a); err != nil || st.getCount() != gets {
		t.Fatalf("a should still be cached (err %v)", err)
	}
	if _, err := c.Get(ctx, b); err != nil || st.getCount() != gets+1 {
		t.Fatalf("b should have been evicted (err %v)", err)
	}
	if s := c.Stats(); s.Entries != 2 || s.Bytes > 2*one+one/2 || s.Evictions != 2 {
		t.Fatalf("stats %+v", s)
	}

	// A shard larger than the whole budget is served but not kept.
	tiny := NewShardCache(st, 10)
	for i := 0; i < 2; i++ {
		if _, err := tiny.Get(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if s := tiny.Stats(); s.Entries != 0 || s.Misses != 2 {
		t.Fatalf("oversized shard cached: %+v", s)
	}

	// A corrupt shard is an error and is not cached.
	st.objs[b.Key][100] ^= 1
	c2 := NewShardCache(st, 1<<30)
	for i := 0; i < 2; i++ {
		_, err := c2.Get(ctx, b)
		wantErr(t, err, b.Key, "SHA-256")
	}
	if s := c2.Stats(); s.Entries != 0 || s.Misses != 2 {
		t.Fatalf("corrupt shard cached: %+v", s)
	}
}

// slowStore delays reads so that concurrent cache misses overlap.
type slowStore struct {
	*memStore
}

func (s slowStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	time.Sleep(20 * time.Millisecond)
	return s.memStore.Get(ctx, key)
}

func TestShardCacheConcurrent(t *testing.T) {
	st, m := ingestSmall(t)
	c := NewShardCache(slowStore{st}, 1<<30)
	before := st.getCount()
	var wg sync.WaitGroup
	results := make([]*ShardData, 32)
	errs := make([]error, 32)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sh := m.Shards.Train[i%2]
			results[i], errs[i] = c.Get(context.Background(), sh)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
		if results[i] != results[i%2] {
			t.Fatalf("goroutine %d got a different copy of shard %d", i, i%2)
		}
	}
	if got := st.getCount() - before; got != 2 {
		t.Fatalf("%d store reads for 2 shards requested by 32 goroutines", got)
	}
	// A waiter whose context ends gives up without disturbing the shared read.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := c.Get(context.Background(), m.Shards.Train[2])
		done <- err
	}()
	time.Sleep(5 * time.Millisecond)
	cancel()
	if _, err := c.Get(ctx, m.Shards.Train[2]); err == nil {
		// The read may already have finished; that is fine too.
		t.Log("shared read finished before the cancel")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
