package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tabnas/tabnas/infra/objstore"
	"github.com/tabnas/tabnas/infra/testenv"
)

const (
	natsUser   = "alice"
	natsPass   = "s3cr3tpw-7Qx"
	wrongPass  = "wr0ngpw-9Zk"
	s3URLKey   = "AKIAURLKEY"
	s3URLSecr  = "urls3cr3t-4Hv"
	secretNote = "a password in a URL, a flag or a secret environment variable"
)

// authNATS starts the real nats-server binary with JetStream and user/password
// authentication on a free loopback port, and returns its host:port and a stop function.
func authNATS(t *testing.T) (hostport string, stop func()) {
	t.Helper()
	serverBin := testenv.Lookup(t, testenv.NATSServer)[0]
	for try := 0; try < 5; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hostport = l.Addr().String()
		l.Close()
		_, port, _ := net.SplitHostPort(hostport)
		cmd := exec.Command(serverBin, "-js", "-sd", t.TempDir(), "-a", "127.0.0.1", "-p", port, "--user", natsUser, "--pass", natsPass)
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		stop = func() {
			select {
			case <-exited:
				return
			default:
			}
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		}
		t.Cleanup(stop)
		for i := 0; i < 100; i++ {
			select {
			case <-exited:
				i = 100 // port taken: try another
				continue
			default:
			}
			nc, err := nats.Connect("nats://"+hostport, nats.UserInfo(natsUser, natsPass), nats.Timeout(time.Second))
			if err == nil {
				nc.Close()
				return hostport, stop
			}
			time.Sleep(100 * time.Millisecond)
		}
		stop()
		t.Logf("nats-server on %s did not come up (try %d):\n%s", hostport, try, log.String())
	}
	t.Fatal("could not start an authenticating nats-server")
	return "", nil
}

// checkNoSecrets fails the test if out holds any of the secrets.
func checkNoSecrets(t *testing.T, what string, out []byte, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("%s shows %s (%q):\n%s", what, secretNote, s, out)
		}
	}
}

// waitFor waits until p has logged want (or the deadline passes).
func waitFor(t *testing.T, p *proc, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		ok := strings.Contains(p.out.String(), want)
		p.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t.Fatalf("%q not logged within %v:\n%s", want, d, p.out.String())
}

// TestNoSecretsInOutput runs every service and command of a distributed run with the NATS
// password in the URL (as --nats, and as $TABNAS_NATS_URL) against a real nats-server that
// demands it, with the S3 secret in the environment, through a whole small search, a server
// crash (disconnect warnings), wrong passwords (connect errors) and S3 credentials put in
// --store. No output of any process, no KV entry and no stored artifact may hold a secret.
func TestNoSecretsInOutput(t *testing.T) {
	in := servers(t)
	hostport, stopNATS := authNATS(t)
	good := "nats://" + natsUser + ":" + natsPass + "@" + hostport
	wrong := "nats://" + natsUser + ":" + wrongPass + "@" + hostport
	s3Secret := os.Getenv(testenv.S3SecretKey)
	secrets := []string{natsPass, wrongPass, s3URLSecr, s3Secret}

	dir := t.TempDir()
	data := filepath.Join(dir, "rows.csv")
	var csv bytes.Buffer
	csv.WriteString("a,b,c,target\n")
	for i := range 600 {
		fmt.Fprintf(&csv, "%d,%d.25,%d,%d\n", i%37, (i*13)%41, (i*7)%5, ((i%37)+(i%5))%2)
	}
	if err := os.WriteFile(data, csv.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	// The services: the URL by flag for the evaluator, by environment for the sampler.
	ev := in.start(t, "evaluator", "--nats", good, "--name", "ev-secret")
	sp := &proc{cmd: exec.Command(bin, "sampler", "--store", in.store, "--prefix", in.prefix)}
	sp.cmd.Env = append(append([]string(nil), in.env...), "TABNAS_NATS_URL="+good)
	sp.cmd.Stdout, sp.cmd.Stderr = sp, sp
	if err := sp.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if sp.cmd.ProcessState == nil {
			sp.cmd.Process.Kill()
			sp.cmd.Wait()
		}
	}()
	waitFor(t, ev, "evaluator ready", time.Minute)
	waitFor(t, sp, "sampler ready", time.Minute)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(args []string, env ...string) ([]byte, int) {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(append([]string(nil), in.env...), env...)
		out, err := cmd.CombinedOutput()
		code := 0
		if err != nil {
			code = -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
		}
		return out, code
	}

	// A whole small search through the password-protected server.
	out, code := run([]string{"coordinator", "--nats", good, "--store", in.store, "--prefix", in.prefix, "--run", "secrets",
		"--data", data, "--max-params", "800", "--layers", "2", "--steps", "8", "--seed", "3", "--top-k", "1",
		"--trial-epochs", "1", "--trial-patience", "1", "--rows-per-shard", "400", "--json", "--progress", "none"})
	if code != 0 {
		t.Fatalf("coordinator exited %d:\n%s", code, out)
	}
	checkNoSecrets(t, "coordinator output", out, secrets)
	out, code = run([]string{"status", "--run", "secrets", "--prefix", in.prefix}, "TABNAS_NATS_URL="+good)
	if code != 0 {
		t.Fatalf("status exited %d:\n%s", code, out)
	}
	checkNoSecrets(t, "status output", out, secrets)

	// KV entries and stored artifacts.
	checkKV(t, ctx, hostport, in.prefix, secrets)
	checkStore(t, ctx, in, secrets)

	// Wrong password, wrong S3 credentials in --store: every connect error path.
	for _, c := range []struct {
		args []string
		env  []string
	}{
		{[]string{"evaluator", "--nats", wrong, "--store", in.store, "--prefix", in.prefix}, nil},
		{[]string{"sampler", "--store", in.store, "--prefix", in.prefix}, []string{"TABNAS_NATS_URL=" + wrong}},
		{[]string{"status", "--run", "secrets", "--nats", wrong, "--prefix", in.prefix}, nil},
		{[]string{"coordinator", "--nats", wrong, "--store", in.store, "--prefix", in.prefix, "--data", data, "--run", "wrong"}, nil},
		{[]string{"resume", "--run", "secrets", "--nats", wrong, "--store", in.store, "--prefix", in.prefix}, nil},
		{[]string{"search", "--nats", wrong, "--data", data, "--out", dir, "--store", in.store, "--prefix", in.prefix}, nil},
		{[]string{"evaluator", "--nats", good, "--store", "s3://" + s3URLKey + ":" + s3URLSecr + "@bucket/prefix"}, nil},
		{[]string{"coordinator", "--nats", good, "--store", "https://" + s3URLKey + ":" + s3URLSecr + "@s3.example/b", "--data", data}, nil},
		{[]string{"search", "--data", "s3://" + s3URLKey + ":" + s3URLSecr + "@bucket/rows.csv", "--out", dir}, nil},
	} {
		out, code := run(c.args, c.env...)
		if code == 0 {
			t.Errorf("tabnas %s succeeded with bad credentials:\n%s", strings.Join(c.args, " "), out)
		}
		if !bytes.Contains(out, []byte("xxxxx")) {
			t.Errorf("tabnas %s: the error does not name the (masked) URL:\n%s", c.args[0], out)
		}
		checkNoSecrets(t, "tabnas "+c.args[0]+" with bad credentials", out, secrets)
	}

	// The server dies under the running services: their disconnect warnings name the URL.
	stopNATS()
	waitFor(t, ev, "nats disconnected", time.Minute)
	waitFor(t, sp, "nats disconnected", time.Minute)
	for _, p := range []*proc{ev, sp} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Wait()
	}
	checkNoSecrets(t, "evaluator log", ev.out.Bytes(), secrets)
	checkNoSecrets(t, "sampler log", sp.out.Bytes(), secrets)
	if !bytes.Contains(ev.out.Bytes(), []byte(natsUser+":xxxxx@")) {
		t.Errorf("evaluator log does not name the masked URL:\n%s", ev.out.Bytes())
	}
}

// checkKV reads every entry of the run's KV buckets.
func checkKV(t *testing.T, ctx context.Context, hostport, prefix string, secrets []string) {
	t.Helper()
	nc, err := nats.Connect("nats://"+hostport, nats.UserInfo(natsUser, natsPass))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	entries := 0
	names := js.KeyValueStoreNames(ctx)
	for name := range names.Name() {
		if !strings.HasPrefix(strings.ToLower(name), strings.ToLower(prefix)) {
			continue
		}
		kv, err := js.KeyValue(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for k := range keys.Keys() {
			e, err := kv.Get(ctx, k)
			if err != nil {
				continue // deleted meanwhile
			}
			entries++
			checkNoSecrets(t, "KV "+name+"/"+k, e.Value(), secrets)
		}
	}
	if err := names.Error(); err != nil {
		t.Fatal(err)
	}
	if entries == 0 {
		t.Fatalf("no KV entries found under prefix %s", prefix)
	}
}

// checkStore reads every stored object of the run but the Parquet shards and weights.
func checkStore(t *testing.T, ctx context.Context, in *infra, secrets []string) {
	t.Helper()
	bucket, prefix, err := objstore.ParseS3URL(in.store)
	if err != nil {
		t.Fatal(err)
	}
	st, err := objstore.NewS3(ctx, bucket, prefix, objstore.Options{Endpoint: os.Getenv(testenv.S3Endpoint),
		AccessKey: os.Getenv(testenv.S3AccessKey), SecretKey: os.Getenv(testenv.S3SecretKey)})
	if err != nil {
		t.Fatal(err)
	}
	infos, err := st.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for _, info := range infos {
		if strings.HasSuffix(info.Key, ".parquet") || strings.HasSuffix(info.Key, ".bin") {
			continue
		}
		rc, err := st.Get(ctx, info.Key)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		read++
		checkNoSecrets(t, "stored object "+info.Key, b, secrets)
	}
	if read == 0 {
		t.Fatalf("no artifacts found in %s", in.store)
	}
}
