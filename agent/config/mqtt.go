package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MQTT configures the MQTT transport (agent/transport/mqtt).
//
// With no broker configured hedge runs an embedded broker on
// Embedded.Listen (loopback by default) and connects to it, so a fresh
// install answers MQTT without anything else running.
type MQTT struct {
	Enabled bool `yaml:"enabled"`
	// Broker is a URL: tcp://host:1883, ssl://host:8883, ws://host/mqtt,
	// wss://… . "" (and no Brokers) runs the embedded broker.
	Broker string `yaml:"broker"`
	// Brokers are tried after Broker, in order, for fail-over.
	Brokers []string `yaml:"brokers"`
	// ClientID must be stable for the persistent session to survive a
	// restart; "" means "hedge-<device>".
	ClientID string `yaml:"client_id"`
	Username string `yaml:"username"`
	// PasswordFile is a file readable by its owner only (0600) holding the
	// password. The password itself never lives in this file: it comes from
	// HEDGE_MQTT_PASSWORD or from PasswordFile.
	PasswordFile string `yaml:"password_file"`
	// Password is set from HEDGE_MQTT_PASSWORD only; it wins over
	// PasswordFile.
	Password Secret  `yaml:"-"`
	TLS      MQTTTLS `yaml:"tls"`
	// Prefix is the first topic level: <prefix>/<device>/query.
	Prefix string `yaml:"prefix"`
	// QoS of replies, status and discovery messages (and of the request
	// subscription): 1 (the default) or 2.
	QoS int `yaml:"qos"`
	// CleanSession off (the default) keeps the broker session, so requests
	// published while hedge is away are delivered when it is back.
	CleanSession   bool          `yaml:"clean_session"`
	KeepAlive      time.Duration `yaml:"keepalive"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// ReconnectMax caps the reconnect backoff.
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// MaxInflight is the number of requests answered at once (workers).
	MaxInflight int `yaml:"max_inflight"`
	// Queue is how many requests hedge takes from the broker ahead of its
	// workers. Beyond that hedge stops reading, and the broker holds the
	// rest (unacknowledged, so nothing is lost). 0: none are taken ahead.
	Queue int `yaml:"queue"`
	// BusyAfter is how long a request taken from the broker may wait for
	// room in the queue before it gets a busy reply. hedge reads nothing
	// else from the broker meanwhile (not even keepalive answers), so it
	// stays under paho's 10 s ping timeout.
	BusyAfter     time.Duration     `yaml:"busy_after"`
	Actions       MQTTActions       `yaml:"actions"`
	Embedded      MQTTEmbedded      `yaml:"embedded"`
	HomeAssistant MQTTHomeAssistant `yaml:"homeassistant"`
}

// MQTTTLS configures TLS to the broker (ssl://, tls://, mqtts://, wss://).
type MQTTTLS struct {
	// CA is a PEM file of the CAs that sign the broker's certificate; ""
	// uses the system roots.
	CA string `yaml:"ca"`
	// Cert and Key are a PEM client certificate and its key, for brokers
	// that authenticate clients by certificate.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ServerName overrides the name checked in the broker's certificate.
	ServerName string `yaml:"server_name"`
}

// MQTTActions configures the MQTT publishes that intents may perform.
type MQTTActions struct {
	// Allow lists the topic filters (+ and # wildcards) an intent action may
	// publish to; any other topic is refused. Empty refuses every action.
	// The default, home/#, covers the starter intents' lights, fan and plug.
	Allow []string `yaml:"allow"`
}

// MQTTEmbedded configures the broker hedge runs when none is configured.
type MQTTEmbedded struct {
	// Listen is host:port. A non-loopback address needs mqtt.username and a
	// password: the embedded broker never serves strangers anonymously.
	Listen string `yaml:"listen"`
}

// MQTTHomeAssistant configures Home Assistant MQTT discovery.
type MQTTHomeAssistant struct {
	Enabled bool `yaml:"enabled"`
	// Prefix is Home Assistant's discovery prefix.
	Prefix string `yaml:"prefix"`
	// Interval is how often the sensor values are published.
	Interval time.Duration `yaml:"interval"`
}

// MaxBusyAfter bounds mqtt.busy_after below paho's ping timeout (10 s): a
// request waiting for room holds up everything hedge reads from the broker.
const MaxBusyAfter = 8 * time.Second

func defaultMQTT() MQTT {
	return MQTT{
		Enabled:        true,
		Prefix:         "hedge",
		QoS:            1,
		KeepAlive:      30 * time.Second,
		ConnectTimeout: 10 * time.Second,
		ReconnectMax:   30 * time.Second,
		MaxInflight:    8,
		Queue:          16,
		BusyAfter:      5 * time.Second,
		Actions:        MQTTActions{Allow: []string{"home/#"}},
		Embedded:       MQTTEmbedded{Listen: "127.0.0.1:1883"},
		HomeAssistant:  MQTTHomeAssistant{Prefix: "homeassistant", Interval: 30 * time.Second},
	}
}

// UseEmbedded reports whether hedge runs its own broker: no broker is
// configured.
func (m *MQTT) UseEmbedded() bool { return m.Broker == "" && len(m.Brokers) == 0 }

// BrokerURLs returns Broker then Brokers, skipping empty entries.
func (m *MQTT) BrokerURLs() []string {
	var out []string
	if m.Broker != "" {
		out = append(out, m.Broker)
	}
	for _, b := range m.Brokers {
		if b != "" {
			out = append(out, b)
		}
	}
	return out
}

func (m *MQTT) env() []envOverride {
	return []envOverride{
		{"HEDGE_MQTT_BROKER", setString(&m.Broker)},
		{"HEDGE_MQTT_CLIENT_ID", setString(&m.ClientID)},
		{"HEDGE_MQTT_USERNAME", setString(&m.Username)},
		{"HEDGE_MQTT_PASSWORD", func(v string) error { m.Password = Secret(v); return nil }},
		{"HEDGE_MQTT_PASSWORD_FILE", setString(&m.PasswordFile)},
		{"HEDGE_MQTT_ENABLED", func(v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("must be true or false")
			}
			m.Enabled = b
			return nil
		}},
	}
}

// TLSScheme reports whether a broker URL scheme speaks TLS.
func TLSScheme(scheme string) bool {
	switch scheme {
	case "ssl", "tls", "mqtts", "tcps", "wss":
		return true
	}
	return false
}

func (m *MQTT) validate() []string {
	var p []string
	bad := func(key string, val any, why string) { p = append(p, Problem("mqtt."+key, val, why)) }
	anyTLS := false
	for i, b := range m.BrokerURLs() {
		key := "broker"
		if m.Broker == "" || i > 0 {
			key = "brokers"
		}
		u, err := url.Parse(b)
		if err != nil || u.Host == "" {
			bad(key, b, "must be a URL such as tcp://127.0.0.1:1883 or ssl://broker:8883")
			continue
		}
		switch u.Scheme {
		case "tcp", "mqtt", "ws":
		case "ssl", "tls", "mqtts", "tcps", "wss":
			anyTLS = true
		default:
			bad(key, b, "scheme must be tcp, ssl, ws or wss")
		}
		if u.User != nil {
			bad(key, "(a URL with credentials)", "put the user in mqtt.username and the password in HEDGE_MQTT_PASSWORD or mqtt.password_file")
		}
	}
	if !anyTLS && (m.TLS.CA != "" || m.TLS.Cert != "" || m.TLS.Key != "" || m.TLS.ServerName != "") && !m.UseEmbedded() {
		bad("tls", "set", "no broker URL uses TLS; use ssl://host:8883 (or wss://)")
	}
	if (m.TLS.Cert == "") != (m.TLS.Key == "") {
		bad("tls.cert", fmt.Sprintf("%q", m.TLS.Cert), "tls.cert and tls.key must be given together")
	}
	if len(m.ClientID) > 128 || !utf8.ValidString(m.ClientID) {
		bad("client_id", fmt.Sprintf("%q", m.ClientID), "must be at most 128 bytes of UTF-8")
	}
	if why := topicNameProblem(m.Prefix); why != "" {
		bad("prefix", fmt.Sprintf("%q", m.Prefix), why)
	}
	if m.QoS < 1 || m.QoS > 2 {
		bad("qos", m.QoS, "must be 1 or 2: every request must get its reply, which QoS 0 cannot promise across a reconnect")
	}
	if m.KeepAlive < time.Second {
		bad("keepalive", m.KeepAlive, "must be at least 1s")
	}
	if m.ConnectTimeout <= 0 {
		bad("connect_timeout", m.ConnectTimeout, "must be a positive duration such as 10s")
	}
	if m.ReconnectMax < time.Second {
		bad("reconnect_max", m.ReconnectMax, "must be at least 1s")
	}
	if m.MaxInflight < 1 || m.MaxInflight > 1024 {
		bad("max_inflight", m.MaxInflight, "must be between 1 and 1024")
	}
	if m.Queue < 0 || m.Queue > 1<<16 {
		bad("queue", m.Queue, "must be between 0 and 65536")
	}
	if m.BusyAfter <= 0 || m.BusyAfter > MaxBusyAfter {
		bad("busy_after", m.BusyAfter, "must be a positive duration of at most "+MaxBusyAfter.String())
	}
	for _, f := range m.Actions.Allow {
		if why := TopicFilterProblem(f); why != "" {
			bad("actions.allow", fmt.Sprintf("%q", f), why)
		}
	}
	if m.UseEmbedded() {
		host, port, err := net.SplitHostPort(m.Embedded.Listen)
		if err != nil {
			bad("embedded.listen", fmt.Sprintf("%q", m.Embedded.Listen), "must be host:port such as 127.0.0.1:1883")
		} else {
			if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
				bad("embedded.listen", m.Embedded.Listen, "port must be a number from 0 to 65535")
			}
			if !LoopbackHost(host) && (m.Username == "" || (m.Password == "" && m.PasswordFile == "")) {
				bad("embedded.listen", m.Embedded.Listen, "listens beyond loopback, which needs mqtt.username and a password (HEDGE_MQTT_PASSWORD or mqtt.password_file)")
			}
		}
	}
	if m.HomeAssistant.Enabled {
		if why := topicNameProblem(m.HomeAssistant.Prefix); why != "" {
			bad("homeassistant.prefix", fmt.Sprintf("%q", m.HomeAssistant.Prefix), why)
		}
		if m.HomeAssistant.Interval < time.Second {
			bad("homeassistant.interval", m.HomeAssistant.Interval, "must be at least 1s")
		}
	}
	return p
}

// LoopbackHost reports whether the host part of a listen address keeps a
// listener on this machine: localhost or a loopback IP. "" (every address)
// and other names, which may resolve anywhere, do not. It is the one check
// behind http.listen, mqtt.embedded.listen and the embedded broker.
func LoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(h)
	return err == nil && addr.IsLoopback()
}

// topicNameProblem says why s cannot be a topic prefix: "" when it can.
func topicNameProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case !utf8.ValidString(s) || strings.ContainsRune(s, 0):
		return "must be UTF-8 without NUL"
	case strings.ContainsAny(s, "+#"):
		return "must not contain the wildcards + or #"
	case strings.HasPrefix(s, "$"):
		return "must not start with $ (reserved for the broker)"
	case strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || strings.Contains(s, "//"):
		return "must not have empty topic levels"
	case len(s) > 256:
		return "must be at most 256 bytes"
	case strings.IndexFunc(s, controlRune) >= 0:
		// The transport refuses them too (mosquitto drops the client):
		// config check must say so rather than hedge run.
		return "must not hold control characters"
	}
	return ""
}

// controlRune reports C0 and C1 control characters.
func controlRune(r rune) bool { return r < 0x20 || r >= 0x7f && r <= 0x9f }

// TopicFilterProblem says why f is not a usable topic filter for
// mqtt.actions.allow, "" when it is. The MQTT transport checks its
// allow-list with it too, so config check and hedge run agree.
func TopicFilterProblem(f string) string {
	switch {
	case f == "":
		return "must not be empty"
	case !utf8.ValidString(f) || strings.ContainsRune(f, 0):
		return "must be UTF-8 without NUL"
	case strings.HasPrefix(f, "$"):
		return "must not start with $ (reserved for the broker)"
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return "# must be the last level"
		case l != "#" && l != "+" && strings.ContainsAny(l, "+#"):
			return "a wildcard must fill a whole level"
		}
	}
	return ""
}
