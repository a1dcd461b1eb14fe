package objstore_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tabnas/tabnas/infra/objstore"
)

const crashEnv = "OBJSTORE_TEST_CRASH_DIR"

// blockingReader yields size/2 bytes, announces it, then blocks forever: the process is
// killed in the middle of a Put.
type blockingReader struct {
	left   int
	signal func()
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if b.left == 0 {
		b.signal()
		select {}
	}
	n := min(len(p), b.left)
	for i := range p[:n] {
		p[i] = 'x'
	}
	b.left -= n
	return n, nil
}

// TestMain doubles as the crash helper: with crashEnv set, the binary starts a Put and
// waits to be killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashEnv); dir != "" {
		s, err := objstore.NewLocal(dir)
		if err != nil {
			panic(err)
		}
		r := &blockingReader{left: 4 << 20, signal: func() { os.Stdout.WriteString("half-written\n") }}
		s.Put(context.Background(), "ckpt/state.bin", r, 8<<20)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

func TestLocalCrashMidPut(t *testing.T) {
	dir := t.TempDir()
	s, err := objstore.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Put(ctx, "ckpt/state.bin", strings.NewReader("old state"), 9); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "half-written\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q, %v", line, err)
	}
	cmd.Process.Kill() // SIGKILL: no deferred cleanup runs
	cmd.Wait()

	// The old object is intact, the half-written temp file exists but is invisible.
	rc, err := s.Get(ctx, "ckpt/state.bin")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "old state" {
		t.Fatalf("after crash object = %d bytes %.20q", len(b), b)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "ckpt"))
	if len(entries) != 2 {
		t.Fatalf("expected the object and one stray temp file, found %d entries", len(entries))
	}
	infos, err := s.List(ctx, "")
	if err != nil || len(infos) != 1 || infos[0].Key != "ckpt/state.bin" || infos[0].Size != 9 {
		t.Fatalf("list after crash = %+v, %v", infos, err)
	}
	// A later Put still works and the stray file stays hidden.
	if err := s.Put(ctx, "ckpt/state.bin", strings.NewReader("new"), 3); err != nil {
		t.Fatal(err)
	}
	if infos, _ := s.List(ctx, "ckpt/"); len(infos) != 1 {
		t.Fatalf("list = %+v", infos)
	}
}

func TestLocalKeyConflicts(t *testing.T) {
	s, err := objstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Put(ctx, "a", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a/b", strings.NewReader("x"), 1); err == nil {
		t.Error("put a/b under object a succeeded")
	}
	if err := s.Put(ctx, "d/e", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	err = s.Put(ctx, "d", strings.NewReader("x"), 1)
	if err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("put d over directory d/: %v", err)
	}
	if _, err := s.Stat(ctx, "d"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("stat of a directory: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "d"); err != nil {
		t.Errorf("delete of a directory name: %v", err)
	}
	if _, err := s.Stat(ctx, "d/e"); err != nil {
		t.Errorf("delete of d removed d/e: %v", err)
	}
}

func TestLocalRootErrors(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, []byte("x"), 0o644)
	if _, err := objstore.NewLocal(f); err == nil || !strings.Contains(err.Error(), f) {
		t.Errorf("NewLocal(file) = %v", err)
	}
	if _, err := objstore.NewLocal(""); err == nil {
		t.Error("NewLocal(\"\") succeeded")
	}
}

func TestLocalContextCancelledMidPut(t *testing.T) {
	s, err := objstore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	go func() {
		pw.Write(make([]byte, 1000))
		cancel()
		time.Sleep(10 * time.Millisecond)
		pw.Write(make([]byte, 1000))
		pw.Close()
	}()
	err = s.Put(ctx, "k", pr, 2000)
	pr.Close() // unblock the writer
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("put = %v, want context.Canceled", err)
	}
	entries, _ := os.ReadDir(s.Root())
	if len(entries) != 0 {
		t.Fatalf("cancelled put left %d files", len(entries))
	}
}
