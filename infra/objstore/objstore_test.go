package objstore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/infra/objstore/objstoretest"
	"github.com/tabnas/tabnas/infra/redact"
)

func TestLocalConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		s, err := objstore.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestS3Conformance(t *testing.T) {
	objstoretest.S3Options(t) // skip early, once, when no server is configured
	objstoretest.Run(t, func(t *testing.T) objstore.Store { return objstoretest.NewS3(t) })
}

func TestParseS3URL(t *testing.T) {
	good := []struct{ url, bucket, key string }{
		{"s3://b", "b", ""},
		{"s3://b/", "b", ""},
		{"s3://my-bucket/data/train.csv", "my-bucket", "data/train.csv"},
		{"s3://b/prefix/", "b", "prefix"},
	}
	for _, c := range good {
		b, k, err := objstore.ParseS3URL(c.url)
		if err != nil || b != c.bucket || k != c.key {
			t.Errorf("ParseS3URL(%q) = %q, %q, %v; want %q, %q", c.url, b, k, err, c.bucket, c.key)
		}
	}
	for _, u := range []string{"", "s3://", "s3:///key", "http://b/k", "b/k", "s3://b/../k", "s3://b//k", "s3://b/k?versionId=1", "s3://user@b/k", "s3://AKIAKEY:s3cr3tkey@b/k"} {
		if _, _, err := objstore.ParseS3URL(u); err == nil {
			t.Errorf("ParseS3URL(%q) accepted a bad URL", u)
		} else if u != "" && !strings.Contains(err.Error(), redact.URL(u)) {
			t.Errorf("ParseS3URL(%q) error %q does not name the URL", u, err)
		}
	}
}

// TestURLErrorsHideCredentials: a store URL or endpoint with user info is refused, and the
// error names it with the secret masked.
func TestURLErrorsHideCredentials(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"s3://AKIAKEY:s3cr3tkey@bucket/prefix", "s3://s3cr3tkey@bucket", "https://AKIAKEY:s3cr3tkey@host/bucket",
		"file://AKIAKEY:s3cr3tkey@host/dir", "file://AKIAKEY:s3cr3tkey@host:bad/dir"} {
		_, err := objstore.Open(ctx, u, objstore.Options{})
		if err == nil {
			t.Fatalf("Open(%q) accepted credentials in the URL", u)
		}
		if strings.Contains(err.Error(), "s3cr3tkey") || !strings.Contains(err.Error(), "xxxxx@") {
			t.Errorf("Open(%q) error = %q", u, err)
		}
	}
	for _, ep := range []string{"http://AKIAKEY:s3cr3tkey@127.0.0.1:1/path", "http://AKIAKEY:s3cr3tkey@127.0.0.1:bad"} {
		_, err := objstore.NewS3(ctx, "b", "", objstore.Options{Endpoint: ep, AccessKey: "a", SecretKey: "b"})
		if err == nil || strings.Contains(err.Error(), "s3cr3tkey") {
			t.Errorf("NewS3 with endpoint %q: error = %v", ep, err)
		}
	}
}

func TestOpenURLs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, u := range []string{"file://" + dir + "/a", dir + "/b", "file://localhost" + dir + "/c"} {
		s, err := objstore.Open(ctx, u, objstore.Options{})
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		if _, ok := s.(*objstore.Local); !ok || !strings.HasPrefix(s.URL(), "file://"+dir) {
			t.Errorf("Open(%q) = %T %s", u, s, s.URL())
		}
	}
	t.Chdir(dir)
	s, err := objstore.Open(ctx, "rel/dir", objstore.Options{})
	if err != nil || s.URL() != "file://"+dir+"/rel/dir" {
		t.Fatalf("relative path: %v %v", s, err)
	}
	for _, u := range []string{"", "http://host/x", "file://host/x", "file://", "gs://b/p", "file:///x?y=1"} {
		_, err := objstore.Open(ctx, u, objstore.Options{})
		if err == nil {
			t.Errorf("Open(%q) succeeded", u)
		} else if u != "" && !strings.Contains(err.Error(), u) {
			t.Errorf("Open(%q) error %q does not name the URL", u, err)
		}
	}
}

func TestS3OptionsAndErrors(t *testing.T) {
	ctx := context.Background()
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	_, err := objstore.Open(ctx, "s3://bucket/p", objstore.Options{Endpoint: "http://127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") || !strings.Contains(err.Error(), "s3://bucket/p") {
		t.Errorf("no-credentials error = %v", err)
	}
	for _, ep := range []string{"ftp://h:1", "http://h:1/path", "h:1/x"} {
		_, err := objstore.Open(ctx, "s3://bucket/p", objstore.Options{Endpoint: ep, AccessKey: "a", SecretKey: "b"})
		if err == nil || !strings.Contains(err.Error(), ep) {
			t.Errorf("endpoint %q: error = %v", ep, err)
		}
	}
	// Nothing listens on port 1: the error names the store and the endpoint.
	_, err = objstore.Open(ctx, "s3://bucket/p", objstore.Options{Endpoint: "http://127.0.0.1:1", AccessKey: "a", SecretKey: "b", MaxRetries: 1})
	if err == nil || !strings.Contains(err.Error(), "s3://bucket/p") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("unreachable endpoint error = %v", err)
	}
}

func TestS3FromEnvAndURL(t *testing.T) {
	bucket, opts := objstoretest.S3Options(t)
	ctx := context.Background()
	// The way the services get it: only a URL, the rest from the environment.
	t.Setenv(objstore.EnvS3Endpoint, opts.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", opts.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", opts.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	prefix := "t-env-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	s, err := objstore.Open(ctx, "s3://"+bucket+"/"+prefix+"/", objstore.Options{PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.URL() != "s3://"+bucket+"/"+prefix {
		t.Errorf("URL() = %q", s.URL())
	}
	other := objstoretest.NewS3(t)
	if err := s.Put(ctx, "k", strings.NewReader("v"), 1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Delete(ctx, "k") })
	// Prefixes isolate stores in one bucket.
	if l, err := other.List(ctx, ""); err != nil || len(l) != 0 {
		t.Errorf("other prefix sees %v, %v", l, err)
	}
	if l, err := s.List(ctx, ""); err != nil || len(l) != 1 || l[0].Key != "k" {
		t.Errorf("list = %v, %v", l, err)
	}

	// Wrong secret: a clear error at open time.
	_, err = objstore.NewS3(ctx, bucket, "", objstore.Options{Endpoint: opts.Endpoint, AccessKey: opts.AccessKey, SecretKey: "wrong", MaxRetries: 1})
	if err == nil || !strings.Contains(err.Error(), opts.Endpoint) {
		t.Errorf("wrong secret: %v", err)
	}
	// Missing bucket: named in the error; CreateBucket makes it.
	nb := "tabnas-new-" + strings.ToLower(objstoretest.RandomSuffix())
	_, err = objstore.NewS3(ctx, nb, "", opts)
	if err == nil || !strings.Contains(err.Error(), nb) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing bucket: %v", err)
	}
	o := opts
	o.CreateBucket = true
	ns, err := objstore.NewS3(ctx, nb, "x", o)
	if err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	if err := ns.Put(ctx, "k", strings.NewReader("v"), 1); err != nil {
		t.Fatal(err)
	}
	ns.Delete(ctx, "k")
	ns.Client().RemoveBucket(ctx, nb)
}
