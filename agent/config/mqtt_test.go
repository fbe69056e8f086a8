package config

import (
	"strings"
	"testing"
)

func TestMQTTDefaults(t *testing.T) {
	c := Default()
	m := c.MQTT
	if !m.Enabled || !m.UseEmbedded() || m.Embedded.Listen != "127.0.0.1:1883" || m.QoS != 1 || m.CleanSession || m.Prefix != "hedge" {
		t.Fatalf("mqtt defaults %+v", m)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestMQTTValidate(t *testing.T) {
	checkSnippets(t, "pw@", []snippet{
		{"mqtt:\n  broker: tcp://10.0.0.2:1883\n", ""},
		{"mqtt:\n  broker: ssl://broker.lan:8883\n  tls:\n    ca: /etc/hedge/ca.pem\n    server_name: broker.lan\n", ""},
		{"mqtt:\n  brokers: [tcp://a:1883, ws://b:9001/mqtt]\n", ""},
		{"mqtt:\n  broker: http://x\n", "mqtt.broker: http://x: scheme must be tcp, ssl, ws or wss"},
		{"mqtt:\n  broker: nohost\n", "mqtt.broker: nohost: must be a URL"},
		{"mqtt:\n  broker: tcp://user:pw@x:1883\n", "mqtt.broker: (a URL with credentials)"},
		{"mqtt:\n  broker: tcp://x:1883\n  tls:\n    ca: /ca.pem\n", "mqtt.tls: set: no broker URL uses TLS"},
		{"mqtt:\n  broker: ssl://x:8883\n  tls:\n    cert: /c.pem\n", "tls.cert and tls.key must be given together"},
		{"mqtt:\n  prefix: a/+/b\n", `mqtt.prefix: "a/+/b": must not contain the wildcards`},
		{"mqtt:\n  prefix: $SYS\n", "must not start with $"},
		{"mqtt:\n  prefix: a//b\n", "empty topic levels"},
		{"mqtt:\n  prefix: \"a\\tb\"\n", "must not hold control characters"},
		{"mqtt:\n  qos: 0\n", "mqtt.qos: 0: must be 1 or 2"},
		{"mqtt:\n  keepalive: 100ms\n", "mqtt.keepalive: 100ms: must be at least 1s"},
		{"mqtt:\n  max_inflight: 0\n", "mqtt.max_inflight: 0: must be between 1 and 1024"},
		{"mqtt:\n  queue: -1\n", "mqtt.queue: -1"},
		{"mqtt:\n  actions:\n    allow: [home/+/light/set, 'home/#']\n", ""},
		{"mqtt:\n  actions:\n    allow: ['home/#/x']\n", "# must be the last level"},
		{"mqtt:\n  actions:\n    allow: ['home/li+ght']\n", "a wildcard must fill a whole level"},
		{"mqtt:\n  actions:\n    allow: ['$SYS/#']\n", "must not start with $"},
		{"mqtt:\n  embedded:\n    listen: 0.0.0.0:1883\n", "listens beyond loopback, which needs mqtt.username"},
		{"mqtt:\n  embedded:\n    listen: 0.0.0.0:1883\n  username: hedge\n  password_file: /etc/hedge/mqtt-password\n", ""},
		{"mqtt:\n  embedded:\n    listen: localhost\n", "must be host:port"},
		{"mqtt:\n  homeassistant:\n    enabled: true\n    interval: 0s\n", "mqtt.homeassistant.interval: 0s"},
		{"mqtt:\n  password: hunter2\n", `unknown key "password" in section mqtt`},
	})
}

func TestMQTTEnv(t *testing.T) {
	c := Default()
	env := map[string]string{
		"HEDGE_MQTT_BROKER":   "tcp://127.0.0.1:1884",
		"HEDGE_MQTT_USERNAME": "hedge",
		"HEDGE_MQTT_PASSWORD": "s3cret",
		"HEDGE_MQTT_ENABLED":  "false",
	}
	if err := c.applyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.MQTT.Broker != "tcp://127.0.0.1:1884" || c.MQTT.Username != "hedge" || c.MQTT.Password.Reveal() != "s3cret" || c.MQTT.Enabled || c.MQTT.UseEmbedded() {
		t.Fatalf("env not applied: %+v", c.MQTT)
	}
	if s := c.MQTT.Password.String(); strings.Contains(s, "s3cret") {
		t.Fatalf("password printed: %s", s)
	}
	env["HEDGE_MQTT_ENABLED"] = "maybe"
	if err := c.applyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err == nil {
		t.Fatal("HEDGE_MQTT_ENABLED=maybe accepted")
	}
	// Non-loopback embedded broker with a password from the environment.
	c = Default()
	c.MQTT.Embedded.Listen = "0.0.0.0:1883"
	c.MQTT.Username = "hedge"
	c.MQTT.Password = "pw"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
