// Package redact keeps credentials out of logs, errors and stored records: the password (or
// lone token) in the user info of a URL such as nats://alice:pw@host or s3://key:secret@bucket,
// and the values of the environment variables that hold secrets.
//
// Use URL on a URL (or a comma-separated list of them) before logging it or wrapping it into
// an error, Error on an error that may echo one (a client library's), and ReplaceAttr in every
// slog handler as the last line of defence.
package redact

import (
	"errors"
	"log/slog"
	"os"
	"regexp"
	"strings"
)

// Mask replaces a secret.
const Mask = "xxxxx"

// SecretEnv lists the environment variables whose values Text removes wherever they appear.
var SecretEnv = []string{"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "TABNAS_NATS_PASSWORD", "TABNAS_NATS_TOKEN", "NATS_PASSWORD", "NATS_TOKEN"}

// userinfo matches "scheme://USERINFO@": the greedy run stops at the end of the authority, so
// an unescaped '@' inside a password is covered up to the last '@' (as url.Parse splits it).
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#\s,"'<>]*)@`)

// URL returns s with the user info of every URL in it masked: "nats://alice:pw@h" becomes
// "nats://alice:xxxxx@h" and "nats://token@h" becomes "nats://xxxxx@h". It works on a single
// URL, a comma-separated list (as NATS takes) and free text such as an error message.
func URL(s string) string {
	if !strings.Contains(s, "@") || !strings.Contains(s, "://") {
		return s
	}
	return userinfo.ReplaceAllStringFunc(s, func(m string) string {
		sub := userinfo.FindStringSubmatch(m)
		scheme, info := sub[1], sub[2]
		if user, _, ok := strings.Cut(info, ":"); ok {
			return scheme + user + ":" + Mask + "@"
		}
		return scheme + Mask + "@"
	})
}

// minSecret is the shortest environment value Text masks: shorter ones would mask ordinary
// words and numbers.
const minSecret = 6

// Text is URL plus the masking of every value of the SecretEnv variables.
func Text(s string) string {
	s = URL(s)
	for _, name := range SecretEnv {
		if v := os.Getenv(name); len(v) >= minSecret && strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, Mask)
		}
	}
	return s
}

// Error returns err unchanged when its message holds no credential, and otherwise an error
// with the masked message that still matches, under errors.Is, what err matches. It does not
// unwrap to err, so no caller can reach the unmasked text.
func Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := Text(msg); clean != msg {
		return &masked{msg: clean, err: err}
	}
	return err
}

type masked struct {
	msg string
	err error
}

func (m *masked) Error() string        { return m.msg }
func (m *masked) Is(target error) bool { return errors.Is(m.err, target) }

// ReplaceAttr masks credentials in every string, error and Stringer value (and the message)
// of a slog record; set it as slog.HandlerOptions.ReplaceAttr.
func ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); s != Text(s) {
			a.Value = slog.StringValue(Text(s))
		}
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case error:
			if s := v.Error(); s != Text(s) {
				a.Value = slog.StringValue(Text(s))
			}
		case interface{ String() string }:
			if s := v.String(); s != Text(s) {
				a.Value = slog.StringValue(Text(s))
			}
		}
	}
	return a
}
