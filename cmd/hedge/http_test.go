package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/transport/httpapi"
)

func TestWireHTTP(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	cfg := config.Default()
	cfg.HTTP.Enabled = false
	if tr, err := wireHTTP(context.Background(), cfg, nil, nil, nil, log); tr != nil || err != nil {
		t.Fatalf("disabled: %v, %v; want nil, nil", tr, err)
	}

	cfg = config.Default()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.HTTP.Debug = true
	tel := newTelemetry(cfg, log)
	if !tel.Debug() {
		t.Error("http.debug does not reach the telemetry")
	}
	ready := httpapi.NewReadiness("socket")
	tr, err := wireHTTP(context.Background(), cfg, tel, ready, nil, log)
	if err != nil || tr == nil || tr.Name() != "http" {
		t.Fatalf("wireHTTP = %v, %v", tr, err)
	}
	srv := tr.(*httpapi.Server)
	a := agent.New(agent.Options{Observe: tel.Observe})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, tr) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	// /metrics carries hedge's metrics and the Go runtime's. The listener
	// is open since wireHTTP, so the request waits for Serve if need be.
	resp, err := http.Get(srv.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	body := string(b)
	for _, want := range []string{"hedge_outbox_depth", "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestWireHTTPTokenFile(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("0123456789abcdef-token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	cfg := config.Default()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.HTTP.TokenFile = path
	if _, err := wireHTTP(context.Background(), cfg, nil, nil, nil, log); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("readable token file: %v, want a mode error", err)
	}
}
