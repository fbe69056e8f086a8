package mqtt

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/hedge-edge/hedge/agent/config"
)

// BrokerOptions configures the embedded broker.
type BrokerOptions struct {
	// Listen is host:port; port 0 picks a free one (see Broker.Addr).
	Listen string
	// Username and Password, when Username is set, are required of every
	// client. Without them the broker only listens on loopback.
	Username string
	Password string
	Log      *slog.Logger
}

// Broker is the embedded MQTT broker (mochi-mqtt) hedge runs when no
// broker is configured, so a fresh install answers MQTT on its own.
type Broker struct {
	srv  *mochi.Server
	addr string
}

// StartBroker binds the listener and starts serving. It refuses to listen
// beyond loopback without a username and password.
func StartBroker(o BrokerOptions) (*Broker, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: listen %q: %w", o.Listen, err)
	}
	if !config.LoopbackHost(host) && (o.Username == "" || o.Password == "") {
		return nil, fmt.Errorf("embedded broker: listen %s: beyond loopback a username and password are required", o.Listen)
	}
	log := o.Log.With("component", "mqtt-broker")
	srv := mochi.New(&mochi.Options{
		// mochi logs every connection at Info; hedge's log keeps its
		// warnings only.
		Logger: slog.New(minLevel{h: log.Handler(), min: slog.LevelWarn}),
	})
	var hook mochi.Hook = &openHook{}
	if o.Username != "" {
		hook = &passwordHook{user: []byte(o.Username), pass: []byte(o.Password)}
	}
	if err := srv.AddHook(hook, nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "hedge", Address: o.Listen})
	if err := srv.AddListener(l); err != nil {
		_ = srv.Close()
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("embedded broker: listen %s: %w (another broker runs there? set mqtt.broker: tcp://%s to use it)", o.Listen, err, o.Listen)
		}
		return nil, fmt.Errorf("embedded broker: listen %s: %w", o.Listen, err)
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	log.Info("embedded broker listening", "addr", l.Address(), "auth", o.Username != "")
	return &Broker{srv: srv, addr: l.Address()}, nil
}

// Addr is the address the broker listens on.
func (b *Broker) Addr() string { return b.addr }

// URL is the broker's tcp:// URL.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Close stops the broker and disconnects its clients.
func (b *Broker) Close() error { return b.srv.Close() }

// openHook lets every client in: the broker only listens on loopback then.
type openHook struct{ mochi.HookBase }

func (h *openHook) ID() string { return "hedge-open" }
func (h *openHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}
func (h *openHook) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }
func (h *openHook) OnACLCheck(*mochi.Client, string, bool) bool              { return true }

// passwordHook admits the clients that present the configured credentials.
type passwordHook struct {
	mochi.HookBase
	user, pass []byte
}

func (h *passwordHook) ID() string { return "hedge-password" }
func (h *passwordHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (h *passwordHook) OnConnectAuthenticate(_ *mochi.Client, pk packets.Packet) bool {
	u := subtle.ConstantTimeCompare(pk.Connect.Username, h.user)
	p := subtle.ConstantTimeCompare(pk.Connect.Password, h.pass)
	return u&p == 1
}

func (h *passwordHook) OnACLCheck(*mochi.Client, string, bool) bool { return true }

// minLevel drops records below min.
type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}
func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h: m.h.WithAttrs(a), min: m.min}
}
func (m minLevel) WithGroup(g string) slog.Handler { return minLevel{h: m.h.WithGroup(g), min: m.min} }
