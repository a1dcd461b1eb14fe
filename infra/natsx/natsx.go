// Package natsx starts and connects to NATS with JetStream for tabnas: an embedded
// in-process server for the one-process mode, a connection helper for real servers, the
// idempotent setup of every stream, consumer, KV bucket and object store the services use,
// and a publish that survives a stream leader dying mid-request.
package natsx

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/tabnas/tabnas/infra/redact"
)

// ConnectOptions tune Connect. Zero values pick the defaults noted on each field.
type ConnectOptions struct {
	// Name identifies the client in server monitoring, e.g. "tabnas-evaluator".
	Name string
	// Logger receives disconnect/reconnect/error events; nil means slog.Default().
	Logger *slog.Logger
	// Timeout bounds the initial dial; default 5 s.
	Timeout time.Duration
	// ReconnectWait is the pause between reconnect attempts; default 250 ms (plus jitter).
	ReconnectWait time.Duration
	// MaxReconnects; 0 means reconnect forever (a batch job should ride out a server restart).
	MaxReconnects int
	// RetryOnFailedConnect keeps retrying in the background when the first dial fails
	// instead of returning an error.
	RetryOnFailedConnect bool
	// Extra options (credentials, TLS, ...) appended last.
	Extra []nats.Option
}

// Connect dials a real NATS server (url may list several, comma-separated) with reconnect
// settings suited to long runs: unlimited reconnects, short jittered waits, and pings every
// 10 s so a silently dead server is noticed in about 30 s instead of minutes.
func Connect(url string, opts ConnectOptions) (*nats.Conn, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.ReconnectWait <= 0 {
		opts.ReconnectWait = 250 * time.Millisecond
	}
	if opts.MaxReconnects == 0 {
		opts.MaxReconnects = -1
	}
	no := []nats.Option{
		nats.Name(opts.Name),
		nats.Timeout(opts.Timeout),
		nats.MaxReconnects(opts.MaxReconnects),
		nats.ReconnectWait(opts.ReconnectWait),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "url", redact.URL(url), "err", redact.Error(err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Error("nats async error", "url", redact.URL(url), "subject", subj, "err", redact.Error(err))
		}),
	}
	if opts.RetryOnFailedConnect {
		no = append(no, nats.RetryOnFailedConnect(true))
	}
	no = append(no, opts.Extra...)
	nc, err := nats.Connect(url, no...)
	if err != nil {
		return nil, fmt.Errorf("natsx: connect to %s: %w", redact.URL(url), redact.Error(err))
	}
	return nc, nil
}
