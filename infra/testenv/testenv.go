// Package testenv reads the addresses of the real test servers that
// infra/scripts/servers.sh starts, so that tests can skip (or, under `make test`, fail)
// when they are missing.
package testenv

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// Names of the variables servers.sh writes and with-servers.sh exports.
const (
	NATSURL     = "TABNAS_TEST_NATS_URL"
	S3Endpoint  = "TABNAS_TEST_S3_ENDPOINT"
	S3AccessKey = "TABNAS_TEST_S3_ACCESS_KEY"
	S3SecretKey = "TABNAS_TEST_S3_SECRET_KEY"
	S3Bucket    = "TABNAS_TEST_S3_BUCKET"
	S3Region    = "TABNAS_TEST_S3_REGION"
	// NATSServer is the path of the nats-server binary, for tests that start their own.
	NATSServer = "TABNAS_TEST_NATS_SERVER"
	// RequireServers=1 turns a missing server variable into a test failure.
	RequireServers = "TABNAS_TEST_REQUIRE_SERVERS"
)

// Lookup returns the values of the named variables in order. If any is unset it skips the
// test with a loud message, or fails it when RequireServers is "1" (as `make test` sets).
func Lookup(t testing.TB, names ...string) []string {
	t.Helper()
	vals := make([]string, len(names))
	var missing []string
	for i, n := range names {
		vals[i] = os.Getenv(n)
		if vals[i] == "" {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return vals
	}
	msg := fmt.Sprintf("real-server test NOT RUN: %s unset; run `make test` or "+
		"`infra/scripts/with-servers.sh go test ./...`", strings.Join(missing, ", "))
	if os.Getenv(RequireServers) == "1" {
		t.Fatalf("%s (%s=1)", msg, RequireServers)
	}
	fmt.Fprintln(os.Stderr, "!!! "+t.Name()+": "+msg)
	t.Skip("!!! " + msg)
	return nil
}
