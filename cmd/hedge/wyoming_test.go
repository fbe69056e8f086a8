package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// wyClient speaks Wyoming as its README frames events, with no code of
// hedge's: a header line, then data_length bytes of JSON data.
type wyClient struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func (c *wyClient) send(typ string, data map[string]any, inline bool) {
	c.t.Helper()
	var msg []byte
	if inline {
		msg, _ = json.Marshal(map[string]any{"type": typ, "data": data})
		msg = append(msg, '\n')
	} else if data == nil {
		msg = fmt.Appendf(nil, "{\"type\":%q}\n", typ)
	} else {
		body, _ := json.Marshal(data)
		msg = fmt.Appendf(nil, "{\"type\":%q,\"data_length\":%d}\n%s", typ, len(body), body)
	}
	if _, err := c.nc.Write(msg); err != nil {
		c.t.Fatal(err)
	}
}

func (c *wyClient) read() (string, map[string]any) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(60 * time.Second))
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		c.t.Fatalf("read header: %v", err)
	}
	var h struct {
		Type       string         `json:"type"`
		Data       map[string]any `json:"data"`
		DataLength int            `json:"data_length"`
	}
	if err := json.Unmarshal(line, &h); err != nil {
		c.t.Fatalf("header %q: %v", line, err)
	}
	if h.Data == nil {
		h.Data = map[string]any{}
	}
	if h.DataLength > 0 {
		body := make([]byte, h.DataLength)
		if _, err := io.ReadFull(c.r, body); err != nil {
			c.t.Fatal(err)
		}
		if err := json.Unmarshal(body, &h.Data); err != nil {
			c.t.Fatalf("data %q: %v", body, err)
		}
	}
	return h.Type, h.Data
}

// startWyomingHedge starts hedge with the Wyoming service on addr and the
// embedded MQTT broker (the starter light intents act over MQTT), plus
// extra YAML, and waits until it listens.
func startWyomingHedge(t *testing.T, addr, extra string) *proc {
	t.Helper()
	state := tempState(t, "hwyo")
	socket := filepath.Join(state, "h.sock")
	body := fmt.Sprintf("version: 1\ndevice: e2e\nstate_dir: %s\nsocket: %s\nhttp:\n  enabled: false\nmqtt:\n  embedded:\n    listen: %s\nslm:\n  runtime_library: %s\n  threads: 1\nwyoming:\n  listen: %s\n%s",
		state, socket, freeTCPPort(t), ortLibrary(t), addr, extra)
	cfg := filepath.Join(state, "config.yaml")
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p := launch(t, cfg)
	p.state, p.socket = state, socket
	p.waitListening(t)
	return p
}

func freeTCPPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestWyomingE2E: Home Assistant's questions to the real hedge over
// Wyoming: describe, a starter intent, and an open question that the
// local LLM answers when there is one and nothing recognises otherwise.
func TestWyomingE2E(t *testing.T) {
	for _, tc := range []struct {
		name, extra, open string
	}{
		{"slm only", "", "not-recognized"},
		{"slm and llm", fmt.Sprintf("llm:\n  model: %s\n  max_tokens: 16\n", tinyModel(t)), "handled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeTCPPort(t)
			p := startWyomingHedge(t, addr, tc.extra)
			for i, inline := range []bool{false, true} {
				nc, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				c := &wyClient{t: t, nc: nc, r: bufio.NewReader(nc)}
				c.send("describe", nil, inline)
				typ, data := c.read()
				progs, _ := data["intent"].([]any)
				if typ != "info" || len(progs) != 1 {
					t.Fatalf("describe → %s %v", typ, data)
				}
				models := progs[0].(map[string]any)["models"].([]any)
				if langs := fmt.Sprint(models[0].(map[string]any)["languages"]); langs != "[en]" {
					t.Errorf("languages %s, want [en]", langs)
				}
				c.send("transcript", map[string]any{"text": "turn on the kitchen light", "language": "en"}, inline)
				typ, data = c.read()
				if typ != "intent" || data["name"] != "lights_on_kitchen" || data["text"] != "Kitchen lights on." {
					t.Fatalf("framing %d: kitchen light → %s %v", i, typ, data)
				}
				if l, ok := data["entities"].([]any); !ok || len(l) != 0 {
					t.Errorf("entities %v, want an empty list", data["entities"])
				}
				c.send("transcript", map[string]any{"text": fmt.Sprintf("what is the airspeed of an unladen swallow, take %d", i)}, inline)
				if typ, data = c.read(); typ != tc.open {
					t.Fatalf("open question → %s %v, want %s", typ, data, tc.open)
				}
				if text, _ := data["text"].(string); text == "" {
					t.Errorf("%s without a text", typ)
				}
			}
			p.cmd.Process.Signal(syscall.SIGTERM)
			p.waitExit(t, 30*time.Second)
		})
	}
}
