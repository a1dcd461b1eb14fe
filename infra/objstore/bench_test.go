package objstore_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/tabnas/tabnas/infra/objstore"
)

// BenchmarkLocalPutGet1MiB: one durable (fsync'd) 1 MiB Put and a full read back.
func BenchmarkLocalPutGet1MiB(b *testing.B) {
	s, err := objstore.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	data := make([]byte, 1<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := s.Put(ctx, "ckpt/state.bin", bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
		rc, err := s.Get(ctx, "ckpt/state.bin")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, rc)
		rc.Close()
	}
}
