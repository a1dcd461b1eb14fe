// Package natstest gives tests a JetStream to talk to: an embedded server per test, or the
// real nats-server started by infra/scripts/servers.sh, and names that never collide.
package natstest

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tabnas/tabnas/infra/natsx"
	"github.com/tabnas/tabnas/infra/testenv"
)

// Embedded starts an in-process server on a temp dir, shut down when the test ends.
func Embedded(t testing.TB) (*server.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	s, nc, err := natsx.StartEmbedded(t.TempDir(), natsx.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { natsx.Shutdown(s, nc) })
	return s, nc, newJS(t, nc)
}

// URL returns the real server's URL from TABNAS_TEST_NATS_URL, skipping the test when it is
// unset (failing under TABNAS_TEST_REQUIRE_SERVERS=1).
func URL(t testing.TB) string {
	t.Helper()
	return testenv.Lookup(t, testenv.NATSURL)[0]
}

// Real connects to the real test server; the connection closes when the test ends. The
// server is shared by every test package running at the same time: use Names.
func Real(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	url := URL(t)
	nc, err := natsx.Connect(url, natsx.ConnectOptions{Name: "tabnas-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, newJS(t, nc)
}

// Prefix is a unique valid natsx name prefix for this test.
func Prefix(t testing.TB) string {
	var b strings.Builder
	for _, r := range t.Name() {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	p := b.String()
	if len(p) > 30 {
		p = p[len(p)-30:]
	}
	return "t" + p + "_" + strings.ToLower(rand.Text()[:8])
}

// Names returns natsx names under a unique prefix; their streams and buckets are deleted
// when the test ends (js must stay usable until then).
func Names(t testing.TB, js jetstream.JetStream) natsx.Names {
	t.Helper()
	n, err := natsx.NewNames(Prefix(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := natsx.Teardown(ctx, js, n); err != nil {
			t.Logf("teardown: %v", err)
		}
	})
	return n
}

func newJS(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
