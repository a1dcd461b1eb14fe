package natsx

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedOptions tune StartEmbedded. Zero values use the server defaults.
type EmbeddedOptions struct {
	// ServerName; default "tabnas-embedded".
	ServerName string
	// MaxPayload in bytes; 0 keeps the server default (1 MiB).
	MaxPayload int32
	// MaxMemory and MaxStore limit JetStream memory and file storage; 0 = server default.
	MaxMemory int64
	MaxStore  int64
	// Listen, when set ("127.0.0.1:0" for a free port), also serves TCP clients so other
	// processes can attach; empty means no port at all.
	Listen string
	// Logger receives server logs (notices at Info); nil discards them.
	Logger *slog.Logger
	// ClientName names the returned connection; default "tabnas".
	ClientName string
	// ReadyTimeout bounds the start; default 10 s.
	ReadyTimeout time.Duration
}

// tempDirs remembers the store dirs StartEmbedded created itself, for Shutdown to remove.
var tempDirs sync.Map // *server.Server -> string

// StartEmbedded runs nats-server in this process with JetStream storing in dir (an empty dir
// means a fresh temp dir that Shutdown deletes; a kept dir lets a run resume), and returns it
// with a client connection that goes through memory, not TCP.
func StartEmbedded(dir string, opts EmbeddedOptions) (*server.Server, *nats.Conn, error) {
	temp := false
	if dir == "" {
		d, err := os.MkdirTemp("", "tabnas-nats-")
		if err != nil {
			return nil, nil, fmt.Errorf("natsx: embedded server: %w", err)
		}
		dir, temp = d, true
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("natsx: embedded server store dir %s: %w", dir, err)
	}
	cleanup := func() {
		if temp {
			os.RemoveAll(dir)
		}
	}
	so := &server.Options{
		ServerName:         opts.ServerName,
		JetStream:          true,
		StoreDir:           dir,
		MaxPayload:         opts.MaxPayload,
		JetStreamMaxMemory: opts.MaxMemory,
		JetStreamMaxStore:  opts.MaxStore,
		DontListen:         opts.Listen == "",
		NoSigs:             true, // the host program owns signal handling
		NoLog:              opts.Logger == nil,
	}
	if so.ServerName == "" {
		so.ServerName = "tabnas-embedded"
	}
	if opts.Listen != "" {
		host, port, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("natsx: embedded server listen address %q: %w", opts.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("natsx: embedded server listen address %q: bad port", opts.Listen)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		so.Host, so.Port = host, p
	}
	s, err := server.NewServer(so)
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("natsx: embedded server: %w", err)
	}
	if opts.Logger != nil {
		s.SetLoggerV2(slogAdapter{opts.Logger}, false, false, false)
	}
	s.Start()
	wait := opts.ReadyTimeout
	if wait <= 0 {
		wait = 10 * time.Second
	}
	if !s.ReadyForConnections(wait) || !s.JetStreamEnabled() {
		s.Shutdown()
		s.WaitForShutdown()
		cleanup()
		return nil, nil, fmt.Errorf("natsx: embedded server with store %s not ready after %v", dir, wait)
	}
	name := opts.ClientName
	if name == "" {
		name = "tabnas"
	}
	nc, err := nats.Connect("", nats.InProcessServer(s), nats.Name(name))
	if err != nil {
		s.Shutdown()
		s.WaitForShutdown()
		cleanup()
		return nil, nil, fmt.Errorf("natsx: connect to embedded server: %w", err)
	}
	if temp {
		tempDirs.Store(s, dir)
	}
	return s, nc, nil
}

// ConnectEmbedded opens one more in-process connection to s (one per service keeps the
// one-process mode wired like the distributed one).
func ConnectEmbedded(s *server.Server, name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(s), nats.Name(name))
	if err != nil {
		return nil, fmt.Errorf("natsx: connect to embedded server: %w", err)
	}
	return nc, nil
}

// Shutdown flushes and closes nc (may be nil), stops s and waits for it, and removes the
// store dir if StartEmbedded created it.
func Shutdown(s *server.Server, nc *nats.Conn) {
	if nc != nil && !nc.IsClosed() {
		nc.FlushTimeout(2 * time.Second)
		nc.Close()
	}
	if s == nil {
		return
	}
	s.Shutdown()
	s.WaitForShutdown()
	if d, ok := tempDirs.LoadAndDelete(s); ok {
		os.RemoveAll(d.(string))
	}
}

// slogAdapter feeds nats-server's printf-style logger into slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(f string, v ...any) {
	a.l.Info(fmt.Sprintf(f, v...), "component", "nats-server")
}
func (a slogAdapter) Warnf(f string, v ...any) {
	a.l.Warn(fmt.Sprintf(f, v...), "component", "nats-server")
}
func (a slogAdapter) Fatalf(f string, v ...any) {
	a.l.Error(fmt.Sprintf(f, v...), "component", "nats-server")
}
func (a slogAdapter) Errorf(f string, v ...any) {
	a.l.Error(fmt.Sprintf(f, v...), "component", "nats-server")
}
func (a slogAdapter) Debugf(f string, v ...any) {
	a.l.Debug(fmt.Sprintf(f, v...), "component", "nats-server")
}
func (a slogAdapter) Tracef(f string, v ...any) {
	a.l.Debug(fmt.Sprintf(f, v...), "component", "nats-server")
}
