package config

import (
	"strings"
	"testing"
)

func TestSLMDefaultsAndProblems(t *testing.T) {
	c := Default()
	if !c.SLM.Enabled || c.SLM.Encoder != "compact" || c.SLM.Threshold != 0.5 || c.SLM.Intents != "" {
		t.Errorf("defaults: %+v", c.SLM)
	}
	if p := c.SLM.validate(); len(p) != 0 {
		t.Errorf("defaults invalid: %v", p)
	}
	_, err := Parse([]byte("version: 1\nslm:\n  encoder: bert\n  threads: -1\n  threshold: 0\n"))
	for _, want := range []string{`slm.encoder: "bert": must be compact or transformer`, "slm.threads: -1", "slm.threshold: 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	_, err = Parse([]byte("version: 1\nslm:\n  encoder: transformer\n"))
	if err == nil || !strings.Contains(err.Error(), "slm.transformer.model") || !strings.Contains(err.Error(), "slm.transformer.tokenizer") {
		t.Errorf("transformer without files: %v", err)
	}
	if _, err := Parse([]byte("version: 1\nslm:\n  encoder: transformer\n  enabled: false\n")); err != nil {
		t.Errorf("a disabled transformer needs no files: %v", err)
	}
	if _, err := Parse([]byte("version: 1\nslm:\n  intent: x.yaml\n")); err == nil || !strings.Contains(err.Error(), `unknown key "intent" in section slm`) {
		t.Errorf("unknown key: %v", err)
	}
	c = Default()
	env := map[string]string{"HEDGE_SLM_RUNTIME_LIBRARY": "/opt/ort/libonnxruntime.so.1", "HEDGE_SLM_ENABLED": "false"}
	if err := c.applyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.SLM.RuntimeLibrary != "/opt/ort/libonnxruntime.so.1" || c.SLM.Enabled {
		t.Errorf("env overrides: %+v", c.SLM)
	}
	env["HEDGE_SLM_ENABLED"] = "maybe"
	if err := c.applyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err == nil || !strings.Contains(err.Error(), "HEDGE_SLM_ENABLED") {
		t.Errorf("bad bool: %v", err)
	}
}
