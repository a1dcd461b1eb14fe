package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/tabnas/tabnas/infra/objstore"
)

// sourceVersion identifies one version of the raw data a dataset is ingested from: a local
// file by the SHA-256 of its content, an s3:// object by its ETag, size and last-modified
// time (read with a Stat, without downloading it). The dataset cache is keyed on it, so a
// file or object replaced in place is ingested afresh.
type sourceVersion struct {
	s3     bool
	info   objstore.Info // s3:// objects
	sha256 string        // local files
}

// LogValue lets the version be logged as one attribute.
func (v sourceVersion) LogValue() slog.Value {
	if v.s3 {
		return slog.GroupValue(slog.String("etag", v.info.ETag), slog.Int64("bytes", v.info.Size),
			slog.String("modified", v.info.ModTime.UTC().Format(time.RFC3339Nano)))
	}
	return slog.GroupValue(slog.String("sha256", v.sha256))
}

func (v sourceVersion) String() string {
	if v.s3 {
		return fmt.Sprintf("etag %s, %d bytes, modified %s", v.info.ETag, v.info.Size, v.info.ModTime.UTC().Format(time.RFC3339Nano))
	}
	return "sha256 " + v.sha256
}

// readSourceVersion identifies data and writes what identifies it to key: the URL and
// version of an s3:// object, the whole content of a local file.
func readSourceVersion(ctx context.Context, data string, open func(context.Context, string) (objstore.Store, error), key io.Writer) (sourceVersion, error) {
	if strings.HasPrefix(data, "s3://") {
		v, err := statS3Source(ctx, data, open)
		if err != nil {
			return v, err
		}
		fmt.Fprintf(key, "%s|etag=%s|size=%d|modified=%d", data, v.info.ETag, v.info.Size, v.info.ModTime.UnixNano())
		return v, nil
	}
	f, err := os.Open(data)
	if err != nil {
		return sourceVersion{}, fmt.Errorf("data file: %w", err)
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(io.MultiWriter(key, sum), f); err != nil {
		return sourceVersion{}, fmt.Errorf("data file %s: %w", data, err)
	}
	return sourceVersion{sha256: hex.EncodeToString(sum.Sum(nil))}, nil
}

// statS3Source reads the version of an s3:// object without downloading it.
func statS3Source(ctx context.Context, data string, open func(context.Context, string) (objstore.Store, error)) (sourceVersion, error) {
	bucket, key, err := objstore.ParseS3URL(data)
	if err != nil {
		return sourceVersion{}, fmt.Errorf("data: %w", err)
	}
	if key == "" {
		return sourceVersion{}, fmt.Errorf("data %s: want s3://bucket/key", data)
	}
	st, err := open(ctx, "s3://"+bucket)
	if err != nil {
		return sourceVersion{}, fmt.Errorf("data %s: %w", data, err)
	}
	info, err := st.Stat(ctx, key)
	if err != nil {
		return sourceVersion{}, fmt.Errorf("data %s: %w", data, err)
	}
	if info.ETag == "" {
		// Size and time alone would miss a same-size rewrite within the clock's resolution:
		// refuse rather than risk reusing stale data.
		return sourceVersion{}, fmt.Errorf("data %s: the object store gave no ETag to tell versions apart", data)
	}
	return sourceVersion{s3: true, info: info}, nil
}
