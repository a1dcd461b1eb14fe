package natsx_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/tabnas/tabnas/infra/natsx"
	"github.com/tabnas/tabnas/infra/natsx/natstest"
)

// BenchmarkPublishRetry measures one synchronous, deduplicated publish in-process: the cost a
// coordinator pays per work item.
func BenchmarkPublishRetry(b *testing.B) {
	_, _, js := natstest.Embedded(b)
	ctx := context.Background()
	names := natstest.Names(b, js)
	if _, err := natsx.Setup(ctx, js, names, natsx.SetupOptions{Memory: true}); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 256)
	subj := names.ResultSubject("bench")
	b.SetBytes(int64(len(payload)))
	for i := 0; b.Loop(); i++ {
		if _, err := natsx.PublishRetry(ctx, js, subj, payload, strconv.Itoa(i)); err != nil {
			b.Fatal(err)
		}
	}
}
