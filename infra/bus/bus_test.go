package bus_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/tabnas/tabnas/infra/bus"
	"github.com/tabnas/tabnas/infra/bus/bustest"
	"github.com/tabnas/tabnas/infra/natsx"
	"github.com/tabnas/tabnas/infra/natsx/natstest"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestMemory(t *testing.T) {
	bustest.Run(t, func(t *testing.T, ackWait time.Duration) *bus.Bus {
		return bus.NewMemory(quiet(), bus.MemoryOptions{WorkAckWait: ackWait})
	})
}

func TestJetStreamEmbedded(t *testing.T) {
	bustest.Run(t, func(t *testing.T, ackWait time.Duration) *bus.Bus {
		_, nc, _ := natstest.Embedded(t)
		b, err := bus.OpenJetStream(context.Background(), nc, natstest.Prefix(t), natsx.SetupOptions{Memory: true, WorkAckWait: ackWait}, quiet())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		return b
	})
}

func TestJetStreamRealServer(t *testing.T) {
	natstest.URL(t)
	bustest.Run(t, func(t *testing.T, ackWait time.Duration) *bus.Bus {
		nc, js := natstest.Real(t)
		names := natstest.Names(t, js)
		b, err := bus.OpenJetStream(context.Background(), nc, names.Prefix, natsx.SetupOptions{WorkAckWait: ackWait}, quiet())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		return b
	})
}
