package redact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	cases := map[string]string{
		"nats://127.0.0.1:4222":                      "nats://127.0.0.1:4222",
		"nats://alice:s3cr3tpw@127.0.0.1:4222":       "nats://alice:xxxxx@127.0.0.1:4222",
		"nats://tok3n@127.0.0.1:4222":                "nats://xxxxx@127.0.0.1:4222",
		"nats://a:p1@h1:4222,nats://a:p2@h2:4222":    "nats://a:xxxxx@h1:4222,nats://a:xxxxx@h2:4222",
		"tls://alice:p@ss@host/x":                    "tls://alice:xxxxx@host/x",
		"s3://AKIA:secretkey@bucket/prefix":          "s3://AKIA:xxxxx@bucket/prefix",
		"s3://bucket/raw/a@b.csv":                    "s3://bucket/raw/a@b.csv",
		`connect to "nats://u:pw@h:x": invalid port`: `connect to "nats://u:xxxxx@h:x": invalid port`,
		"mail alice@example.com":                     "mail alice@example.com",
		"":                                           "",
	}
	for in, want := range cases {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestText(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "verysecretvalue")
	t.Setenv("AWS_SESSION_TOKEN", "abc") // too short to mask
	got := Text("key verysecretvalue in nats://u:pw@h, abc")
	if want := "key xxxxx in nats://u:xxxxx@h, abc"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}

var errSentinel = errors.New("sentinel")

func TestError(t *testing.T) {
	if Error(nil) != nil {
		t.Fatal("Error(nil) != nil")
	}
	plain := fmt.Errorf("dial: %w", errSentinel)
	if Error(plain) != plain {
		t.Error("an error without credentials was replaced")
	}
	// url.Parse echoes the whole URL, password included.
	_, perr := url.Parse("nats://alice:s3cr3tpw@host:notaport")
	if perr == nil || !strings.Contains(perr.Error(), "s3cr3tpw") {
		t.Skipf("url.Parse no longer echoes the password: %v", perr)
	}
	err := Error(fmt.Errorf("connect: %w: %w", perr, errSentinel))
	if strings.Contains(err.Error(), "s3cr3tpw") || !strings.Contains(err.Error(), "alice:xxxxx@host") {
		t.Errorf("masked error = %q", err)
	}
	if !errors.Is(err, errSentinel) {
		t.Error("masked error lost errors.Is")
	}
	for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
		t.Errorf("masked error unwraps to %q", e)
	}
}

func TestReplaceAttr(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "verysecretvalue")
	var buf bytes.Buffer
	for _, h := range []slog.Handler{
		slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: ReplaceAttr}),
		slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: ReplaceAttr}),
	} {
		log := slog.New(h).With("nats", "nats://alice:s3cr3tpw@h")
		log.Info("connect nats://bob:pw2pw2@h failed", "err", errors.New("auth nats://x:pw3pw3@h"),
			"env", "verysecretvalue", slog.Group("g", "u", "s3://k:pw4pw4@b/p"), "n", 3)
		log.LogAttrs(context.Background(), slog.LevelWarn, "w", slog.Any("stringer", stringer("nats://y:pw5pw5@h")))
	}
	out := buf.String()
	for _, secret := range []string{"s3cr3tpw", "pw2pw2", "pw3pw3", "verysecretvalue", "pw4pw4", "pw5pw5"} {
		if strings.Contains(out, secret) {
			t.Errorf("log output holds %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "alice:xxxxx@h") {
		t.Errorf("log output lost the user name:\n%s", out)
	}
}

type stringer string

func (s stringer) String() string { return string(s) }
