package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/tabnas/tabnas/infra/redact"
)

// DefaultPartSize is the multipart part size for large or unknown-size Puts. minio-go would
// otherwise pick ~537 MiB parts (and buffers) for an unknown size.
const DefaultPartSize = 16 << 20

// S3 is a Store over one bucket of an S3-compatible server, with all keys under a prefix.
// Put is one PutObject call, which S3 makes visible atomically (multipart included).
type S3 struct {
	client   *minio.Client
	bucket   string
	prefix   string // "" or "some/prefix/"
	endpoint string // scheme://host, for messages
	partSize uint64
}

var _ Store = (*S3)(nil)

// NewS3 connects to bucket (creating it when opts.CreateBucket) and checks that it exists,
// so a wrong endpoint, credentials or bucket fail here with a clear message rather than at
// the first write. Empty option fields are read from the environment (see Options).
func NewS3(ctx context.Context, bucket, prefix string, opts Options) (*S3, error) {
	name := "s3://" + bucket + "/" + strings.Trim(prefix, "/")
	if bucket == "" {
		return nil, fmt.Errorf("objstore: %s: empty bucket name", name)
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		if err := ValidateKey(prefix); err != nil {
			return nil, fmt.Errorf("objstore: %s: bad prefix: %w", name, err)
		}
		prefix += "/"
	}
	r := opts.resolve()
	host, secure, err := parseEndpoint(r.Endpoint, r.Insecure)
	if err != nil {
		return nil, fmt.Errorf("objstore: %s: %w", name, err)
	}
	if r.AccessKey == "" || r.SecretKey == "" {
		return nil, fmt.Errorf("objstore: %s: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or Options.AccessKey/SecretKey)", name)
	}
	lookup := minio.BucketLookupAuto
	if r.PathStyle {
		lookup = minio.BucketLookupPath
	}
	scheme := "https"
	if !secure {
		scheme = "http"
	}
	client, err := minio.New(host, &minio.Options{
		Creds:        credentials.NewStaticV4(r.AccessKey, r.SecretKey, r.SessionToken),
		Secure:       secure,
		Region:       r.Region,
		BucketLookup: lookup,
		Transport:    opts.Transport,
		MaxRetries:   opts.MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: %s at %s://%s: %w", name, scheme, host, err)
	}
	s := &S3{client: client, bucket: bucket, prefix: prefix, endpoint: scheme + "://" + host, partSize: opts.PartSize}
	if s.partSize == 0 {
		s.partSize = DefaultPartSize
	}
	ok, err := client.BucketExists(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("objstore: %s at %s: checking bucket: %w", s.URL(), s.endpoint, err)
	}
	if !ok {
		if !opts.CreateBucket {
			return nil, fmt.Errorf("objstore: %s at %s: bucket %q does not exist", s.URL(), s.endpoint, bucket)
		}
		if err := client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: r.Region}); err != nil {
			code := minio.ToErrorResponse(err).Code
			if code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
				return nil, fmt.Errorf("objstore: %s at %s: creating bucket: %w", s.URL(), s.endpoint, err)
			}
		}
	}
	return s, nil
}

// Client exposes the minio client for operations the Store interface does not cover.
func (s *S3) Client() *minio.Client { return s.client }

// Bucket is the bucket name.
func (s *S3) Bucket() string { return s.bucket }

// Prefix is the key prefix inside the bucket, "" or ending with "/".
func (s *S3) Prefix() string { return s.prefix }

// URL returns "s3://bucket/prefix" (no trailing slash).
func (s *S3) URL() string { return "s3://" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/") }

func (s *S3) keyURL(key string) string { return "s3://" + s.bucket + "/" + s.prefix + key }

// Put implements Store.Put with a single PutObject (multipart above the part size).
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("objstore: put: %w", err)
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	// An explicit part size bounds memory for unknown sizes; huge known sizes need bigger parts.
	if size < 0 || size <= int64(s.partSize)*10000 {
		opts.PartSize = s.partSize
	}
	info, err := s.client.PutObject(ctx, s.bucket, s.prefix+key, r, size, opts)
	if err != nil {
		return s.mapErr("put", key, err)
	}
	if size >= 0 && info.Size != size {
		return fmt.Errorf("objstore: put %s: stored %d bytes, caller said %d", s.keyURL(key), info.Size, size)
	}
	return nil
}

// Get implements Store.Get with one GET, so the stream is one version even while the key is
// overwritten. The body stays bound to ctx: do not cancel it before Close.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("objstore: get: %w", err)
	}
	body, _, _, err := minio.Core{Client: s.client}.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.mapErr("get", key, err)
	}
	return body, nil
}

// Open implements Store.Open; every ReadAt is a ranged GET. It is stat'ed first so that a
// missing key fails here, and later reads are pinned to that version's ETag: if the key is
// overwritten meanwhile, reads fail rather than mix versions. The object stays bound to ctx:
// do not cancel it before Close.
func (s *S3) Open(ctx context.Context, key string) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return nil, fmt.Errorf("objstore: open: %w", err)
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.mapErr("open", key, err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, s.mapErr("open", key, err)
	}
	return &s3Object{Object: obj, size: st.Size}, nil
}

// Stat implements Store.Stat.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, fmt.Errorf("objstore: stat: %w", err)
	}
	st, err := s.client.StatObject(ctx, s.bucket, s.prefix+key, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.mapErr("stat", key, err)
	}
	return Info{Key: key, Size: st.Size, ModTime: st.LastModified, ETag: st.ETag}, nil
}

// List implements Store.List.
func (s *S3) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("objstore: list: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio's listing goroutine on an early return
	var out []Info
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, s.mapErr("list", prefix, o.Err)
		}
		key := strings.TrimPrefix(o.Key, s.prefix)
		if strings.HasSuffix(key, "/") {
			continue // directory marker written by some tools, not an object
		}
		out = append(out, Info{Key: key, Size: o.Size, ModTime: o.LastModified, ETag: o.ETag})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete implements Store.Delete; a missing key is not an error.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("objstore: delete: %w", err)
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{}); err != nil {
		if errors.Is(s.mapErr("delete", key, err), ErrNotFound) {
			return nil
		}
		return s.mapErr("delete", key, err)
	}
	return nil
}

// mapErr turns a missing key into ErrNotFound and names the object and endpoint otherwise.
func (s *S3) mapErr(op, key string, err error) error {
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == minio.NoSuchBucket:
		return fmt.Errorf("objstore: %s %s: bucket %q does not exist at %s: %w", op, s.keyURL(key), s.bucket, s.endpoint, err)
	case resp.Code == minio.NoSuchKey || resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("objstore: %s %s: %w", op, s.keyURL(key), ErrNotFound)
	}
	return fmt.Errorf("objstore: %s %s at %s: %w", op, s.keyURL(key), s.endpoint, err)
}

type s3Object struct {
	*minio.Object
	size int64
}

func (o *s3Object) Size() int64 { return o.size }

// parseEndpoint accepts "host:port" (TLS unless insecure) or "http(s)://host:port".
func parseEndpoint(ep string, insecure bool) (host string, secure bool, err error) {
	if ep == "" {
		return "", false, fmt.Errorf("empty S3 endpoint")
	}
	if !strings.Contains(ep, "://") {
		if strings.ContainsAny(ep, "/?#") {
			return "", false, fmt.Errorf("bad S3 endpoint %q: want host:port or http(s)://host:port", redact.URL(ep))
		}
		return ep, !insecure, nil
	}
	u, err := url.Parse(ep)
	if err != nil {
		return "", false, fmt.Errorf("bad S3 endpoint %q: %w", redact.URL(ep), redact.Error(err))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", false, fmt.Errorf("bad S3 endpoint %q: want host:port or http(s)://host:port", redact.URL(ep))
	}
	return u.Host, u.Scheme == "https", nil
}

// resolve fills empty fields from the environment and defaults.
func (o Options) resolve() Options {
	first := func(v string, envs ...string) string {
		for _, e := range envs {
			if v != "" {
				return v
			}
			v = os.Getenv(e)
		}
		return v
	}
	o.Endpoint = first(o.Endpoint, EnvS3Endpoint, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	if o.Endpoint == "" {
		o.Endpoint = "s3.amazonaws.com"
	}
	if o.AccessKey == "" && o.SecretKey == "" {
		o.AccessKey = os.Getenv("AWS_ACCESS_KEY_ID")
		o.SecretKey = os.Getenv("AWS_SECRET_ACCESS_KEY")
		o.SessionToken = first(o.SessionToken, "AWS_SESSION_TOKEN")
	}
	o.Region = first(o.Region, "AWS_REGION", "AWS_DEFAULT_REGION")
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	return o
}
