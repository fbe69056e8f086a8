package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/store"
	"github.com/hedge-edge/hedge/agent/transport/mqtt"
	"github.com/hedge-edge/hedge/agent/transport/mqtt/mqtttest"
)

// greeter is a one-intent classifier and skill set: the agent under load.
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

// TestBenchMQTT runs the load generator briefly against a real agent with
// the bbolt cache, served over a real mosquitto: every path's row, the
// plot, and --out the same as the printed table.
func TestBenchMQTT(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Config{})
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tr, err := mqtt.New(mqtt.Options{Brokers: []string{broker.URL}, Device: "wire", ClientID: "hedge-bench-test", Replies: st})
	if err != nil {
		t.Fatal(err)
	}
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

	var out, errOut bytes.Buffer
	md := filepath.Join(t.TempDir(), "bench.md")
	png := filepath.Join(t.TempDir(), "bench.png")
	code := benchMQTT(context.Background(), []string{"--broker", broker.URL, "--device", "wire", "--rates", "100", "--duration", "1s",
		"--paths", "floor,echo,cache", "--cache-text", "hi", "--out", md, "--plot", png}, &out, &errOut)
	if code != 0 {
		t.Fatalf("bench exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"| floor | 100 |", "| echo | 100 |", "| cache | 100 |", "cache 100"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("bench table lacks %q:\n%s", want, out.String())
		}
	}
	if fi, err := os.Stat(png); err != nil || fi.Size() == 0 {
		t.Errorf("plot not written: %v", err)
	}
	if b, _ := os.ReadFile(md); !bytes.Equal(b, out.Bytes()) {
		t.Error("--out differs from the printed table")
	}
	if code := benchMQTT(context.Background(), []string{"--rates", "fast"}, &out, &errOut); code != 2 {
		t.Errorf("bad --rates: exit %d", code)
	}
}
