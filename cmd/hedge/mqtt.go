package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/store"
	"github.com/hedge-edge/hedge/agent/telemetry"
	"github.com/hedge-edge/hedge/agent/transport/mqtt"
)

// wireMQTT opens the MQTT transport as configured: with no broker
// configured it first starts the embedded broker (loopback unless
// credentials are set). It returns a nil transport and a no-op closeFn when
// mqtt.enabled is false. The returned *mqtt.Transport also implements
// agent.Courier and agent.Publisher. closeFn stops the embedded broker;
// call it after the agent has stopped serving.
func wireMQTT(ctx context.Context, cfg config.Config, st *store.Store, log *slog.Logger) (t agent.Transport, closeFn func() error, err error) {
	noop := func() error { return nil }
	m := cfg.MQTT
	if !m.Enabled {
		return nil, noop, nil
	}
	if st == nil {
		return nil, noop, errors.New("mqtt: no store for the reply window")
	}
	password := m.Password.Reveal()
	if password == "" && m.PasswordFile != "" {
		if password, err = mqtt.ReadPasswordFile(m.PasswordFile); err != nil {
			return nil, noop, badConfig(fmt.Errorf("mqtt: %w", err))
		}
	}
	brokers := m.BrokerURLs()
	closeFn = noop
	if m.UseEmbedded() {
		b, err := mqtt.StartBroker(mqtt.BrokerOptions{Listen: m.Embedded.Listen, Username: m.Username, Password: password, Log: log})
		if err != nil {
			return nil, noop, fmt.Errorf("mqtt: %w", err)
		}
		closeFn = b.Close
		brokers = []string{embeddedURL(b.Addr())}
	}
	var tc *tls.Config
	if anyTLS(brokers) {
		tc, err = mqtt.TLSFiles{CA: m.TLS.CA, Cert: m.TLS.Cert, Key: m.TLS.Key, ServerName: m.TLS.ServerName}.Config()
		if err != nil {
			_ = closeFn()
			return nil, noop, badConfig(fmt.Errorf("mqtt: %w", err))
		}
	}
	o := mqtt.Options{
		Log:             log,
		Brokers:         brokers,
		ClientID:        m.ClientID,
		Username:        m.Username,
		Password:        password,
		TLS:             tc,
		Prefix:          m.Prefix,
		Device:          cfg.Device,
		QoS:             byte(m.QoS),
		CleanSession:    m.CleanSession,
		KeepAlive:       m.KeepAlive,
		ConnectTimeout:  m.ConnectTimeout,
		ReconnectMax:    m.ReconnectMax,
		Workers:         m.MaxInflight,
		Queue:           queueOption(m.Queue),
		BusyAfter:       m.BusyAfter,
		MaxRequestBytes: agent.MaxRequestBytes(cfg.Limits.MaxQueryBytes),
		Allow:           m.Actions.Allow,
		Replies:         st,
	}
	if m.HomeAssistant.Enabled {
		o.Discovery = &mqtt.Discovery{Prefix: m.HomeAssistant.Prefix, Interval: m.HomeAssistant.Interval, Version: version}
	}
	tr, err := mqtt.New(o)
	if err != nil {
		_ = closeFn()
		return nil, noop, err
	}
	return tr, closeFn, nil
}

// queueOption maps mqtt.queue to mqtt.Options.Queue, where 0 means the
// default and a negative value means no waiting.
func queueOption(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// mqttSensors reads Home Assistant's sensor values from telemetry; wire it
// with (*mqtt.Transport).SetSensors.
func mqttSensors(tel *telemetry.Telemetry) func(context.Context) mqtt.Sensors {
	return func(context.Context) mqtt.Sensors {
		s := tel.Snapshot()
		out := mqtt.Sensors{OutboxDepth: s.OutboxDepth, Link: string(s.Link)}
		if len(s.Recent) > 0 {
			out.LastTier = s.Recent[0].Tier
		}
		if s.Requests > 0 {
			out.EscalationRate = float64(s.Escalations) / float64(s.Requests)
		}
		return out
	}
}

// embeddedURL is the URL hedge dials its own broker on: loopback, even
// when the broker listens on every address.
func embeddedURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "tcp://" + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "tcp://" + net.JoinHostPort(host, port)
}

func anyTLS(brokers []string) bool {
	for _, b := range brokers {
		if u, err := url.Parse(b); err == nil && config.TLSScheme(u.Scheme) {
			return true
		}
	}
	return false
}
