// Package objstoretest holds the conformance suite every objstore.Store must pass and a
// helper that opens a throw-away S3 store on the test server started by
// infra/scripts/servers.sh.
package objstoretest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/infra/testenv"
)

// S3Options returns the test bucket and the options to reach it, from the TABNAS_TEST_S3_*
// variables. It skips the test when they are unset (fails under TABNAS_TEST_REQUIRE_SERVERS=1).
func S3Options(t testing.TB) (bucket string, opts objstore.Options) {
	t.Helper()
	v := testenv.Lookup(t, testenv.S3Endpoint, testenv.S3AccessKey, testenv.S3SecretKey, testenv.S3Bucket)
	return v[3], objstore.Options{
		Endpoint:   v[0],
		AccessKey:  v[1],
		SecretKey:  v[2],
		Region:     "us-east-1",
		MaxRetries: 2,
	}
}

// NewS3 opens the test bucket under a fresh random prefix and deletes what is left under it
// when the test ends, so tests (and packages run in parallel) never see each other's keys.
func NewS3(t testing.TB) *objstore.S3 {
	t.Helper()
	bucket, opts := S3Options(t)
	prefix := "t-" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()) + "-" + RandomSuffix()
	ctx := context.Background()
	s, err := objstore.NewS3(ctx, bucket, prefix, opts)
	if err != nil {
		t.Fatalf("open test S3 store: %v", err)
	}
	t.Cleanup(func() {
		infos, err := s.List(ctx, "")
		if err != nil {
			t.Logf("cleanup list %s: %v", s.URL(), err)
			return
		}
		for _, in := range infos {
			if err := s.Delete(ctx, in.Key); err != nil {
				t.Logf("cleanup %s: %v", in.Key, err)
			}
		}
	})
	return s
}

// RandomSuffix is 10 random lower-case letters and digits, usable in bucket names and keys.
func RandomSuffix() string { return strings.ToLower(rand.Text()[:10]) }

// Run runs the conformance suite. newStore must return a fresh, empty store on every call.
func Run(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s objstore.Store)
	}{
		{"PutGetStatList", testPutGetStatList},
		{"ListOrderAndPrefixes", testListOrder},
		{"Overwrite", testOverwrite},
		{"EmptyObject", testEmptyObject},
		{"RandomAccess", testRandomAccess},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"InvalidKeys", testInvalidKeys},
		{"Large24MiB", testLarge},
		{"UnknownSizeMultipart", testUnknownSize},
		{"FailedPutLeavesNothing", testFailedPut},
		{"ConcurrentPutsSameKey", testConcurrentPuts},
		{"ETagIdentifiesVersion", testETag},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func put(t *testing.T, s objstore.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(ctxT(t), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func get(t *testing.T, s objstore.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(ctxT(t), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func keys(infos []objstore.Info) []string {
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.Key
	}
	return out
}

func testPutGetStatList(t *testing.T, s objstore.Store) {
	ctx := ctxT(t)
	if s.URL() == "" {
		t.Error("URL() is empty")
	}
	data := []byte("hello, tabnas\n")
	put(t, s, "datasets/d1/manifest.json", data)
	if got := get(t, s, "datasets/d1/manifest.json"); !bytes.Equal(got, data) {
		t.Fatalf("get = %q, want %q", got, data)
	}
	info, err := s.Stat(ctx, "datasets/d1/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != "datasets/d1/manifest.json" || info.Size != int64(len(data)) {
		t.Errorf("stat = %+v", info)
	}
	if d := time.Since(info.ModTime); d < -time.Hour || d > time.Hour {
		t.Errorf("stat modtime %v is not about now", info.ModTime)
	}
	all, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].Key != "datasets/d1/manifest.json" || all[0].Size != int64(len(data)) {
		t.Errorf("list = %+v", all)
	}
}

func testListOrder(t *testing.T, s objstore.Store) {
	ctx := ctxT(t)
	// Byte order, not directory-walk order: '-' < '/' < '0'.
	for _, k := range []string{"b", "a0", "a/b", "a-c", "a/c/d", "ckpt/step-000010", "ckpt/step-000002"} {
		put(t, s, k, []byte(k))
	}
	cases := map[string][]string{
		"":           {"a-c", "a/b", "a/c/d", "a0", "b", "ckpt/step-000002", "ckpt/step-000010"},
		"a":          {"a-c", "a/b", "a/c/d", "a0"},
		"a/":         {"a/b", "a/c/d"},
		"a/c":        {"a/c/d"},
		"ckpt/step-": {"ckpt/step-000002", "ckpt/step-000010"},
		"nothing/":   {},
		"zz":         {},
	}
	for prefix, want := range cases {
		got, err := s.List(ctx, prefix)
		if err != nil {
			t.Fatalf("list %q: %v", prefix, err)
		}
		if strings.Join(keys(got), ",") != strings.Join(want, ",") {
			t.Errorf("list %q = %v, want %v", prefix, keys(got), want)
		}
		for _, in := range got {
			if in.Size != int64(len(in.Key)) {
				t.Errorf("list %q: %s size %d, want %d", prefix, in.Key, in.Size, len(in.Key))
			}
		}
	}
}

func testOverwrite(t *testing.T, s objstore.Store) {
	put(t, s, "x/obj", []byte("first version, longer"))
	put(t, s, "x/obj", []byte("second"))
	if got := string(get(t, s, "x/obj")); got != "second" {
		t.Fatalf("after overwrite got %q", got)
	}
	info, err := s.Stat(ctxT(t), "x/obj")
	if err != nil || info.Size != 6 {
		t.Fatalf("stat after overwrite = %+v, %v", info, err)
	}
	all, err := s.List(ctxT(t), "")
	if err != nil || len(all) != 1 {
		t.Fatalf("list after overwrite = %v, %v", keys(all), err)
	}
}

func testEmptyObject(t *testing.T, s objstore.Store) {
	put(t, s, "empty", nil)
	if got := get(t, s, "empty"); len(got) != 0 {
		t.Fatalf("empty object read back %d bytes", len(got))
	}
	o, err := s.Open(ctxT(t), "empty")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.Size() != 0 {
		t.Errorf("size = %d", o.Size())
	}
}

func testRandomAccess(t *testing.T, s objstore.Store) {
	data := randBytes(1<<20 + 123)
	put(t, s, "shards/part-0.parquet", data)
	o, err := s.Open(ctxT(t), "shards/part-0.parquet")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.Size() != int64(len(data)) {
		t.Fatalf("Size() = %d, want %d", o.Size(), len(data))
	}
	// Parquet reads the footer first, then column chunks at arbitrary offsets.
	for _, r := range [][2]int{{len(data) - 8, 8}, {0, 4}, {500_000, 70_000}, {1, 1}, {len(data) - 100_000, 100_000}} {
		buf := make([]byte, r[1])
		n, err := o.ReadAt(buf, int64(r[0]))
		if n != r[1] || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(off %d, len %d) = %d, %v", r[0], r[1], n, err)
		}
		if !bytes.Equal(buf, data[r[0]:r[0]+r[1]]) {
			t.Fatalf("ReadAt(off %d, len %d): wrong bytes", r[0], r[1])
		}
	}
	// Across the end: short read with io.EOF.
	buf := make([]byte, 100)
	n, err := o.ReadAt(buf, int64(len(data)-10))
	if n != 10 || err != io.EOF || !bytes.Equal(buf[:10], data[len(data)-10:]) {
		t.Fatalf("ReadAt across end = %d, %v", n, err)
	}
	if n, err := o.ReadAt(buf, int64(len(data))); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt at end = %d, %v; want 0, EOF", n, err)
	}
	// Seek + sequential Read, unaffected by the ReadAt calls above.
	if pos, err := o.Seek(1000, io.SeekStart); err != nil || pos != 1000 {
		t.Fatalf("Seek = %d, %v", pos, err)
	}
	buf = make([]byte, 5000)
	if _, err := io.ReadFull(o, buf); err != nil || !bytes.Equal(buf, data[1000:6000]) {
		t.Fatalf("read after seek: %v", err)
	}
	if pos, err := o.Seek(-16, io.SeekEnd); err != nil || pos != int64(len(data)-16) {
		t.Fatalf("Seek end = %d, %v", pos, err)
	}
	rest, err := io.ReadAll(o)
	if err != nil || !bytes.Equal(rest, data[len(data)-16:]) {
		t.Fatalf("read tail: %d bytes, %v", len(rest), err)
	}
}

func testNotFound(t *testing.T, s objstore.Store) {
	ctx := ctxT(t)
	put(t, s, "present/obj", []byte("x"))
	for _, k := range []string{"missing", "present/missing", "present", "missing/deeper/key", "present/obj/child"} {
		if _, err := s.Get(ctx, k); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Get(%q) err = %v, want ErrNotFound", k, err)
		} else if !strings.Contains(err.Error(), k) {
			t.Errorf("Get(%q) error %q does not name the key", k, err)
		}
		if _, err := s.Open(ctx, k); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Open(%q) err = %v, want ErrNotFound", k, err)
		}
		if _, err := s.Stat(ctx, k); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Stat(%q) err = %v, want ErrNotFound", k, err)
		}
	}
}

func testDelete(t *testing.T, s objstore.Store) {
	ctx := ctxT(t)
	put(t, s, "d/a", []byte("a"))
	put(t, s, "d/b/c", []byte("c"))
	if err := s.Delete(ctx, "d/b/c"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "d/b/c"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("stat after delete: %v", err)
	}
	if err := s.Delete(ctx, "d/b/c"); err != nil {
		t.Fatalf("deleting a missing key: %v, want nil", err)
	}
	got, err := s.List(ctx, "d/")
	if err != nil || strings.Join(keys(got), ",") != "d/a" {
		t.Fatalf("list after delete = %v, %v", keys(got), err)
	}
	// The name of the former "directory" is usable as a key again.
	put(t, s, "d/b", []byte("now an object"))
	if string(get(t, s, "d/b")) != "now an object" {
		t.Fatal("d/b not readable")
	}
}

func testInvalidKeys(t *testing.T, s objstore.Store) {
	ctx := ctxT(t)
	for _, k := range []string{"", "/abs", "../escape", "a/../../b", "a//b", "a/", "./a", "a/./b", "..", "a\\b", "x/.tabnas-tmp-1"} {
		err := s.Put(ctx, k, strings.NewReader("x"), 1)
		if err == nil {
			t.Errorf("Put(%q) accepted an invalid key", k)
			continue
		}
		if !strings.Contains(err.Error(), "invalid object key") {
			t.Errorf("Put(%q) error %q does not say the key is invalid", k, err)
		}
		if _, err := s.Get(ctx, k); err == nil || errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Get(%q) err = %v, want an invalid-key error", k, err)
		}
	}
	for _, p := range []string{"/abs", "../x", "a/../"} {
		if _, err := s.List(ctx, p); err == nil {
			t.Errorf("List(%q) accepted an invalid prefix", p)
		}
	}
	if all, err := s.List(ctx, ""); err != nil || len(all) != 0 {
		t.Errorf("invalid puts left objects: %v, %v", keys(all), err)
	}
}

// testLarge catches servers that store minio-go's signed-chunk framing as data: compare
// size and hash, never just "no error".
func testLarge(t *testing.T, s objstore.Store) {
	data := randBytes(24 << 20)
	want := sha256.Sum256(data)
	put(t, s, "big/24mib.bin", data)
	info, err := s.Stat(ctxT(t), "big/24mib.bin")
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("stat = %+v, %v; want size %d", info, err, len(data))
	}
	if got := sha256.Sum256(get(t, s, "big/24mib.bin")); got != want {
		t.Fatal("24 MiB object came back different (sha256 mismatch)")
	}
	o, err := s.Open(ctxT(t), "big/24mib.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	buf := make([]byte, 1<<20)
	off := int64(20<<20 + 77)
	if n, err := o.ReadAt(buf, off); n != len(buf) || (err != nil && err != io.EOF) || !bytes.Equal(buf, data[off:off+int64(len(buf))]) {
		t.Fatalf("ReadAt in large object: n=%d err=%v", n, err)
	}
}

func testUnknownSize(t *testing.T, s objstore.Store) {
	data := randBytes(17<<20 + 5) // more than one 16 MiB part
	// Hide the length so the store cannot learn it from the reader's type.
	r := io.MultiReader(bytes.NewReader(data[:1<<20]), bytes.NewReader(data[1<<20:]))
	if err := s.Put(ctxT(t), "big/unknown.bin", r, -1); err != nil {
		t.Fatal(err)
	}
	got := get(t, s, "big/unknown.bin")
	if len(got) != len(data) || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("unknown-size put came back %d bytes (want %d) or different", len(got), len(data))
	}
}

type failingReader struct {
	r     io.Reader
	after int
	n     int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n >= f.after {
		return 0, errors.New("source broke")
	}
	if len(p) > f.after-f.n {
		p = p[:f.after-f.n]
	}
	n, err := f.r.Read(p)
	f.n += n
	return n, err
}

func testFailedPut(t *testing.T, s objstore.Store) {
	ctx := ctxT(t)
	data := randBytes(1 << 20)
	// A source that breaks half way, a source shorter than promised, and a cancelled context:
	// none may leave an object (old or partial) that looks complete.
	if err := s.Put(ctx, "f/broken", &failingReader{r: bytes.NewReader(data), after: 512 << 10}, int64(len(data))); err == nil {
		t.Error("put from a failing reader succeeded")
	}
	if err := s.Put(ctx, "f/short", bytes.NewReader(data[:1000]), 5000); err == nil {
		t.Error("put of fewer bytes than the size succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Put(cctx, "f/cancelled", bytes.NewReader(data), int64(len(data))); err == nil {
		t.Error("put with a cancelled context succeeded")
	}
	put(t, s, "f/kept", []byte("old"))
	if err := s.Put(ctx, "f/kept", &failingReader{r: bytes.NewReader(data), after: 4096}, int64(len(data))); err == nil {
		t.Error("overwrite from a failing reader succeeded")
	}
	if got := string(get(t, s, "f/kept")); got != "old" {
		t.Errorf("failed overwrite changed the object to %d bytes", len(got))
	}
	all, err := s.List(ctx, "")
	if err != nil || strings.Join(keys(all), ",") != "f/kept" {
		t.Fatalf("after failed puts list = %v, %v; want only f/kept", keys(all), err)
	}
}

// testConcurrentPuts: writers race on one key while readers read it; every read and the
// final state must be exactly one writer's whole version.
func testConcurrentPuts(t *testing.T, s objstore.Store) {
	const writers = 6
	versions := make(map[[32]byte]int)
	datas := make([][]byte, writers)
	for i := range datas {
		datas[i] = randBytes(256<<10 + mrand.IntN(768<<10))
		versions[sha256.Sum256(datas[i])] = len(datas[i])
	}
	put(t, s, "race/key", datas[0])
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	stop := make(chan struct{})
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				if err := s.Put(ctx, "race/key", bytes.NewReader(datas[i]), int64(len(datas[i]))); err != nil {
					errs <- fmt.Errorf("writer %d: %w", i, err)
					return
				}
			}
		}()
	}
	var rwg sync.WaitGroup
	for range 2 {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				rc, err := s.Get(ctx, "race/key")
				if err != nil {
					errs <- fmt.Errorf("reader: %w", err)
					return
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					errs <- fmt.Errorf("reader: %w", err)
					return
				}
				if _, ok := versions[sha256.Sum256(b)]; !ok {
					errs <- fmt.Errorf("reader saw a torn object of %d bytes", len(b))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rwg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	final := get(t, s, "race/key")
	if n, ok := versions[sha256.Sum256(final)]; !ok || n != len(final) {
		t.Fatalf("final object (%d bytes) is no writer's whole version", len(final))
	}
	all, err := s.List(ctx, "")
	if err != nil || strings.Join(keys(all), ",") != "race/key" {
		t.Fatalf("list = %v, %v; want only race/key (no temp files)", keys(all), err)
	}
}

// testETag: Stat and List agree on an ETag that stays put while the object does and changes
// when it is replaced with other content, of the same size or not. Callers key caches on it.
func testETag(t *testing.T, s objstore.Store) {
	ctx := ctxT(t)
	stat := func(key string) objstore.Info {
		t.Helper()
		info, err := s.Stat(ctx, key)
		if err != nil {
			t.Fatalf("stat %s: %v", key, err)
		}
		if info.ETag == "" {
			t.Fatalf("stat %s: empty ETag", key)
		}
		return info
	}
	put(t, s, "e/obj", []byte("version one"))
	v1 := stat("e/obj")
	if again := stat("e/obj"); again != v1 {
		t.Fatalf("two stats of one version differ: %+v vs %+v", v1, again)
	}
	all, err := s.List(ctx, "e/")
	if err != nil || len(all) != 1 || all[0].ETag != v1.ETag {
		t.Fatalf("list = %+v, %v; want ETag %q", all, err, v1.ETag)
	}
	put(t, s, "e/obj", []byte("version two")) // same size, other bytes
	v2 := stat("e/obj")
	if v2.ETag == v1.ETag {
		t.Fatalf("ETag %q unchanged after replacing the content", v2.ETag)
	}
	put(t, s, "e/obj", []byte("version three, longer"))
	if v3 := stat("e/obj"); v3.ETag == v2.ETag || v3.ETag == v1.ETag || v3.Size == v2.Size {
		t.Fatalf("after a longer replacement stat = %+v (before %+v)", v3, v2)
	}
	put(t, s, "e/other", []byte("version one"))
	if o := stat("e/other"); o.ETag == "" || o.Size != v1.Size {
		t.Fatalf("stat of a second key = %+v", o)
	}
}
