package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// ollamaJS runs scripts/fetch-ollama-js.sh (a fresh machine installs the
// client from npm once) and returns the folder for NODE_PATH.
func ollamaJS(t *testing.T) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command("bash", "../../scripts/fetch-ollama-js.sh")
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("fetch-ollama-js.sh: %v\n%s", err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// TestOllamaClient drives the real hedge (SLM, the tiny GGUF as its LLM,
// MQTT through a real mosquitto for the intents' actions) with the
// official Ollama JavaScript client, as Open WebUI and Home Assistant use
// Ollama's API: list, show, chat whole and streamed with history, the SLM,
// generate, format json, unload and load, Home Assistant's sequence with
// tools and a tool result, and errors (testdata/ollama-client.cjs).
func TestOllamaClient(t *testing.T) {
	nodePath := ollamaJS(t)
	h := startBadHedgeWith(t, tinyModel(t), "  max_tokens: 16\n")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "testdata/ollama-client.cjs", h.httpURL, "stories260K")
	cmd.Env = append(cmd.Environ(), "NODE_PATH="+nodePath)
	out, err := cmd.CombinedOutput()
	t.Logf("ollama client:\n%s", out)
	if err != nil || !strings.Contains(string(out), "all ok") {
		t.Fatalf("the Ollama client failed: %v", err)
	}
	h.alive(t)
}
