package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/mqtt/mqtttest"
)

// fakeOpenAI is a loopback server speaking OpenAI's chat completions wire
// format: the cloud as far as a test may reach. While down it answers 503.
type fakeOpenAI struct {
	down   atomic.Bool
	mu     sync.Mutex
	bodies []string
	calls  int
}

var placeholder = regexp.MustCompile(`\[[A-Z]+_\d+\]`)

func (f *fakeOpenAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.down.Load() {
		http.Error(w, `{"error":{"message":"overloaded","type":"server_error"}}`, http.StatusServiceUnavailable)
		return
	}
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/models"):
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"id":"gpt-test","object":"model","owned_by":"test"}]}`)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/chat/completions"):
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.bodies = append(f.bodies, string(body))
		f.calls++
		f.mu.Unlock()
		var req struct {
			Messages []struct{ Content string } `json:"messages"`
		}
		json.Unmarshal(body, &req)
		last := ""
		if n := len(req.Messages); n > 0 {
			last = req.Messages[n-1].Content
		}
		// Answer with the placeholders the question held, as a model would.
		answer := "The cloud will write to " + strings.Join(placeholder.FindAllString(last, -1), " and ") + "."
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion", "created": time.Now().Unix(), "model": "gpt-test",
			"choices": []map[string]any{{"index": 0, "finish_reason": "stop", "message": map[string]string{"role": "assistant", "content": answer}}},
			"usage":   map[string]int{"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18},
		})
	default:
		http.NotFound(w, r)
	}
}

// TestE2ECloudOutageLateAnswerOverMQTT runs the binary against a real
// mosquitto and a loopback cloud: with the cloud down, a device's question
// is answered by the local LLM at once and queued; when the cloud is back,
// exactly one late cloud answer reaches the device's reply topic, with the
// e-mail address restored on the device and never sent to the cloud.
func TestE2ECloudOutageLateAnswerOverMQTT(t *testing.T) {
	broker := mqtttest.Start(t, mqtttest.Config{})
	cloud := &fakeOpenAI{}
	cloud.down.Store(true)
	srv := httptest.NewServer(cloud)
	defer srv.Close()
	model := tinyModel(t)
	state := tempState(t, "hcloud")
	cfg := fmt.Sprintf(`version: 1
device: e2e
state_dir: %[1]s
socket: %[1]s/h.sock
http:
  enabled: false
mqtt:
  broker: %[2]s
slm:
  runtime_library: %[3]s
  threads: 1
llm:
  model: %[4]s
  max_tokens: 16
cloud:
  base_url: %[5]s/v1
  model: gpt-test
  breaker:
    failures: 1
    backoff_min: 100ms
    backoff_max: 300ms
`, state, broker.URL, ortLibrary(t), model, srv.URL)
	path := filepath.Join(state, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := launch(t, path, "HEDGE_CLOUD_API_KEY=sk-e2e-secret-key-0123456789").logs

	replies := make(chan agent.Answer, 16)
	opts := paho.NewClientOptions().AddBroker(broker.URL).SetClientID("e2e-device")
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	online := make(chan struct{}, 1)
	c.Subscribe("hedge/e2e/status", 1, func(_ paho.Client, m paho.Message) {
		if string(m.Payload()) == "online" {
			select {
			case online <- struct{}{}:
			default:
			}
		}
	}).Wait()
	c.Subscribe("e2e/replies/#", 1, func(_ paho.Client, m paho.Message) {
		var a agent.Answer
		if err := json.Unmarshal(m.Payload(), &a); err != nil {
			t.Errorf("reply is not JSON: %q", m.Payload())
			return
		}
		replies <- a
	}).Wait()
	select {
	case <-online:
	case <-time.After(2 * time.Minute): // a first start trains the intent model
		t.Fatal("hedge did not come online")
	}

	q := `{"id":"c1","text":"please email alice.jones@example.com that the boiler service is due","prefer":"cloud","reply_to":"e2e/replies/c1"}`
	c.Publish("hedge/e2e/query", 1, false, q).Wait()
	var first agent.Answer
	select {
	case first = <-replies:
	case <-time.After(30 * time.Second):
		t.Fatal("no first reply")
	}
	if first.Error != nil || first.Tier != agent.TierLLM || !first.Queued || first.Degraded != "offline" || first.Late {
		t.Fatalf("first reply = %+v, want a local llm answer, queued, degraded offline", first)
	}

	cloud.down.Store(false)
	var late agent.Answer
	select {
	case late = <-replies:
	case <-time.After(30 * time.Second):
		t.Fatal("no late cloud answer after the link came back")
	}
	if !late.Late || late.Tier != agent.TierCloud || late.ID != "c1" || late.Error != nil {
		t.Fatalf("late reply = %+v, want tier cloud, late", late)
	}
	if !strings.Contains(late.Answer, "alice.jones@example.com") {
		t.Fatalf("late answer %q: the placeholder was not restored on the device", late.Answer)
	}
	select {
	case extra := <-replies:
		t.Fatalf("a second late answer arrived: %+v", extra)
	case <-time.After(2 * time.Second):
	}
	cloud.mu.Lock()
	defer cloud.mu.Unlock()
	if cloud.calls != 1 {
		t.Fatalf("the cloud was asked %d times, want once", cloud.calls)
	}
	for _, b := range cloud.bodies {
		if strings.Contains(b, "alice") || strings.Contains(b, "example.com") {
			t.Fatalf("the cloud received personal data: %s", b)
		}
	}
	if strings.Contains(logs.String(), "sk-e2e-secret") || strings.Contains(logs.String(), "alice") {
		t.Fatalf("secret or query text in the logs:\n%s", logs.String())
	}
}
