package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/store"
	"github.com/hedge-edge/hedge/agent/transport/mqtt"
	"github.com/hedge-edge/hedge/agent/transport/mqtt/mqtttest"
)

func TestWireMQTTOff(t *testing.T) {
	cfg := config.Default()
	cfg.MQTT.Enabled = false
	tr, closeFn, err := wireMQTT(context.Background(), cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil || tr != nil || closeFn() != nil {
		t.Fatalf("disabled mqtt: %v, %v", tr, err)
	}
}

func TestWireMQTTRefusesReadablePasswordFile(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.MQTT.Broker = "tcp://127.0.0.1:1"
	cfg.MQTT.Username = "hedge"
	cfg.MQTT.PasswordFile = pw
	if _, _, err := wireMQTT(context.Background(), cfg, st, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("0644 password file: %v", err)
	}
}

// greeter is a one-intent classifier and skill set for the wiring test.
type greeter struct{}

func (greeter) Classify(context.Context, string) (agent.Intent, error) {
	return agent.Intent{Name: "greeting", Confidence: 0.99}, nil
}
func (greeter) Spec(name string) (agent.IntentSpec, bool) {
	return agent.IntentSpec{Name: name, CacheTTL: time.Hour}, name == "greeting"
}
func (greeter) Respond(context.Context, agent.Query, agent.Intent) (string, error) {
	return "Hello!", nil
}

// TestWireMQTTEmbedded wires the default configuration (embedded broker)
// to a real agent with the store as its cache and asks over MQTT.
func TestWireMQTTEmbedded(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := config.Default()
	cfg.Device = "wire"
	cfg.MQTT.Embedded.Listen = fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	tr, closeFn, err := wireMQTT(context.Background(), cfg, st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	mt := tr.(*mqtt.Transport)
	var _ agent.Courier = mt
	var _ agent.Publisher = mt
	a := agent.New(agent.Options{Cache: st, CacheTTL: time.Hour, Classifier: greeter{}, Skills: greeter{}, Limits: agent.Limits{MaxQueryBytes: 4096}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, tr) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	url := "tcp://" + cfg.MQTT.Embedded.Listen
	o := paho.NewClientOptions().AddBroker(url).SetClientID("wire-test")
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to the embedded broker: %v", tok.Error())
	}
	defer c.Disconnect(50)
	got := make(chan []byte, 1)
	c.Subscribe("hedge/wire/reply/w1", 1, func(_ paho.Client, m paho.Message) { got <- m.Payload() }).Wait()
	deadline := time.Now().Add(15 * time.Second)
	var ans agent.Answer
	for ans.Answer == "" {
		// hedge may still be connecting to its own broker: ask again.
		c.Publish("hedge/wire/query", 1, false, `{"id":"w1","text":"hi"}`).Wait()
		select {
		case b := <-got:
			if err := json.Unmarshal(b, &ans); err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatal("no reply over the embedded broker")
		}
	}
	if ans.Answer != "Hello!" {
		t.Fatalf("reply %+v", ans)
	}

}

// TestE2EMQTTEmbeddedBroker runs the hedge binary on its MQTT defaults
// (embedded broker, starter intents, real SLM): a device asks to switch a
// light, a subscriber sees the action, the asker gets the reply, and a
// SIGTERM leaves the retained status offline.
func TestE2EMQTTEmbeddedBroker(t *testing.T) {
	state := tempState(t, "hmqtt")
	listen := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
	cfgPath := filepath.Join(state, "config.yaml")
	cfgBody := fmt.Sprintf("version: 1\ndevice: e2e\nstate_dir: %s\nsocket: %s\nhttp:\n  enabled: false\nmqtt:\n  embedded:\n    listen: %s\nslm:\n  runtime_library: %s\n  threads: 1\n",
		state, filepath.Join(state, "h.sock"), listen, ortLibrary(t))
	if err := os.WriteFile(cfgPath, []byte(cfgBody), 0o600); err != nil {
		t.Fatal(err)
	}
	p := launch(t, cfgPath)

	url := "tcp://" + listen
	var c paho.Client
	deadline := time.Now().Add(2 * time.Minute) // a first start trains the intent model
	for {
		c = paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("e2e-asker").SetConnectTimeout(time.Second))
		if tok := c.Connect(); tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("embedded broker not reachable on %s", listen)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer c.Disconnect(50)
	msgs := make(chan paho.Message, 10)
	c.Subscribe("hedge/e2e/status", 1, func(_ paho.Client, m paho.Message) { msgs <- m }).Wait()
	c.Subscribe("home/#", 1, func(_ paho.Client, m paho.Message) { msgs <- m }).Wait()
	c.Subscribe("e2e/replies/#", 1, func(_ paho.Client, m paho.Message) { msgs <- m }).Wait()
	next := func(topic string) []byte {
		t.Helper()
		timeout := time.After(time.Until(deadline))
		for {
			select {
			case m := <-msgs:
				if m.Topic() == topic {
					return m.Payload()
				}
			case <-timeout:
				t.Fatalf("nothing on %s", topic)
			}
		}
	}
	for string(next("hedge/e2e/status")) != "online" {
	}
	c.Publish("hedge/e2e/query", 1, false, `{"id":"k1","text":"turn on the kitchen light","reply_to":"e2e/replies/k1"}`).Wait()
	if p := next("home/kitchen/light/set"); string(p) != "ON" {
		t.Fatalf("action payload %q", p)
	}
	var a agent.Answer
	if err := json.Unmarshal(next("e2e/replies/k1"), &a); err != nil {
		t.Fatal(err)
	}
	if a.ID != "k1" || a.Tier != agent.TierSLM || a.Intent != "lights_on_kitchen" || a.Error != nil {
		t.Fatalf("reply %+v", a)
	}

	// SIGTERM: hedge says offline before the embedded broker goes away with
	// it; a retained offline is what the next subscriber of a shared broker
	// would see.
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if p := next("hedge/e2e/status"); string(p) != "offline" {
		t.Fatalf("status on stop %q", p)
	}
	p.waitExit(t, 30*time.Second)
}
