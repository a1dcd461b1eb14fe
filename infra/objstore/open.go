package objstore

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tabnas/tabnas/infra/redact"
)

// EnvS3Endpoint names the S3 endpoint when Options.Endpoint is empty; AWS_ENDPOINT_URL_S3 and
// AWS_ENDPOINT_URL are tried next, then AWS itself.
const EnvS3Endpoint = "TABNAS_S3_ENDPOINT"

// Options configure S3 stores (Open ignores them for local stores). Empty fields fall back to
// the environment: endpoint as in EnvS3Endpoint; AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN; AWS_REGION or AWS_DEFAULT_REGION (default us-east-1).
type Options struct {
	// Endpoint is "host:port" or "http(s)://host:port"; an http:// URL turns TLS off.
	Endpoint     string
	AccessKey    string
	SecretKey    string
	SessionToken string
	Region       string
	// Insecure turns TLS off for a scheme-less endpoint.
	Insecure bool
	// PathStyle forces http://host/bucket/key addressing. Endpoints that are not AWS (or
	// another known virtual-host provider) use path style anyway.
	PathStyle bool
	// CreateBucket creates a missing bucket instead of failing (tests, local development).
	CreateBucket bool
	// PartSize is the multipart part size; 0 means DefaultPartSize.
	PartSize uint64
	// MaxRetries per request; 0 means minio-go's default (10).
	MaxRetries int
	// Transport replaces the HTTP transport (custom CAs, test instrumentation).
	Transport http.RoundTripper
}

// Open opens the store a URL names:
//
//	file:///abs/dir      local directory store
//	/abs/dir, rel/dir    the same, for a plain path
//	s3://bucket/prefix   S3 store; endpoint and credentials from opts or the environment
func Open(ctx context.Context, rawURL string, opts Options) (Store, error) {
	switch {
	case rawURL == "":
		return nil, fmt.Errorf("objstore: empty store URL (want file:///dir, a directory path or s3://bucket/prefix)")
	case strings.HasPrefix(rawURL, "s3://"):
		bucket, prefix, err := ParseS3URL(rawURL)
		if err != nil {
			return nil, err
		}
		return NewS3(ctx, bucket, prefix, opts)
	case strings.HasPrefix(rawURL, "file://"):
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("objstore: bad store URL %q: %w", redact.URL(rawURL), redact.Error(err))
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("objstore: bad store URL %q: want file:///absolute/dir (three slashes)", redact.URL(rawURL))
		}
		if u.Path == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("objstore: bad store URL %q: want file:///absolute/dir", redact.URL(rawURL))
		}
		return NewLocal(u.Path)
	case strings.Contains(rawURL, "://"):
		return nil, fmt.Errorf("objstore: unsupported store URL %q (want file:///dir, a directory path or s3://bucket/prefix)", redact.URL(rawURL))
	}
	return NewLocal(rawURL)
}

// ParseS3URL splits "s3://bucket/key/path" into bucket and key ("" for "s3://bucket" or
// "s3://bucket/"). The key keeps any inner slashes; a trailing slash is dropped.
func ParseS3URL(rawURL string) (bucket, key string, err error) {
	rest, ok := strings.CutPrefix(rawURL, "s3://")
	if !ok {
		return "", "", fmt.Errorf("objstore: %q is not an s3:// URL", redact.URL(rawURL))
	}
	bucket, key, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("objstore: %q has no bucket (want s3://bucket/key)", redact.URL(rawURL))
	}
	if strings.ContainsAny(bucket, "?#@:") || strings.ContainsAny(key, "?#") {
		return "", "", fmt.Errorf("objstore: bad S3 URL %q: want s3://bucket/key without query, port or credentials", redact.URL(rawURL))
	}
	key = strings.TrimSuffix(key, "/")
	if key != "" {
		if err := ValidateKey(key); err != nil {
			return "", "", fmt.Errorf("objstore: bad S3 URL %q: %w", redact.URL(rawURL), err)
		}
	}
	return bucket, key, nil
}
