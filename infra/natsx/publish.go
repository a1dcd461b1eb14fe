package natsx

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultAttemptTimeout bounds one publish attempt. A publish in flight when a stream
// leader dies never gets an answer; a short timeout plus a retry (deduplicated by msg id)
// recovers in seconds where one long timeout would hang for minutes.
const DefaultAttemptTimeout = 2 * time.Second

// DefaultRetryWindow bounds the retries when ctx has no deadline. It equals the default
// duplicate window: a retry later than that could be stored twice.
const DefaultRetryWindow = 2 * time.Minute

// Publisher publishes to JetStream with per-attempt timeouts and msg-id retries.
type Publisher struct {
	JS jetstream.JetStream
	// AttemptTimeout per try; default DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// MaxBackoff between tries (starting at 50 ms, doubling); default 1 s.
	MaxBackoff time.Duration
}

// PublishRetry publishes data to subject with Publisher defaults; see Publisher.PublishMsg.
func PublishRetry(ctx context.Context, js jetstream.JetStream, subject string, data []byte, msgID string, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return Publisher{JS: js}.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data}, msgID, opts...)
}

// Publish is PublishMsg for a plain payload.
func (p Publisher) Publish(ctx context.Context, subject string, data []byte, msgID string, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return p.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data}, msgID, opts...)
}

// PublishMsg publishes msg with Nats-Msg-Id msgID, each attempt bounded by AttemptTimeout,
// retrying timeouts, "no responders" and temporary unavailability until ctx ends (or
// DefaultRetryWindow if ctx has no deadline). Because every attempt carries the same id, the
// stream stores the message once however many attempts reached it; such a repeat comes back
// as a successful ack with Duplicate set. msgID must identify the content, e.g.
// "run/step/shard/kind". Permanent errors (payload too large, closed connection, a failed
// expectation) return at once.
func (p Publisher) PublishMsg(ctx context.Context, msg *nats.Msg, msgID string, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if msgID == "" {
		return nil, fmt.Errorf("natsx: publish to %s: empty message id (retries need one to deduplicate)", msg.Subject)
	}
	if p.JS == nil {
		return nil, fmt.Errorf("natsx: publish to %s: nil JetStream", msg.Subject)
	}
	attemptTimeout := p.AttemptTimeout
	if attemptTimeout <= 0 {
		attemptTimeout = DefaultAttemptTimeout
	}
	maxBackoff := p.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = time.Second
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRetryWindow)
		defer cancel()
	}
	opts = append(opts[:len(opts):len(opts)], jetstream.WithMsgID(msgID))
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		ack, err := p.JS.PublishMsg(actx, msg, opts...)
		cancel()
		if err == nil {
			return ack, nil
		}
		if !retryable(err) {
			return nil, fmt.Errorf("natsx: publish to %s (msg id %s): %w", msg.Subject, msgID, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("natsx: publish to %s (msg id %s): gave up after %d attempts: %w (last error: %v)",
				msg.Subject, msgID, attempt, ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// retryable: the message may or may not have been stored, and trying again (with the same
// msg id) can only help.
func retryable(err error) bool {
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected):
		return true
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code == 503 { // e.g. no stream leader yet
		return true
	}
	return false
}
