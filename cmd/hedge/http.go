package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/telemetry"
	"github.com/hedge-edge/hedge/agent/transport/httpapi"
)

// newTelemetry returns hedge's metrics on a registry of its own, with the Go
// runtime and process collectors beside them. Query texts are kept for the
// dashboard only with http.debug or log.level debug.
func newTelemetry(cfg config.Config, log *slog.Logger) *telemetry.Telemetry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	recent := cfg.HTTP.Recent
	if recent == 0 {
		recent = -1 // config's 0 means keep none; telemetry's 0 means its default
	}
	return telemetry.New(reg, telemetry.Options{
		Debug:  cfg.HTTP.Debug || cfg.Log.Level == "debug",
		Recent: recent,
		Log:    log,
	})
}

// wireHTTP opens the HTTP transport (OpenAI-compatible API, /metrics,
// /healthz, /readyz, dashboard) as configured; it returns nil, nil when
// http.enabled is false. The listener is open when it returns; the server
// marks part "http" of ready itself once it serves.
func wireHTTP(ctx context.Context, cfg config.Config, tel *telemetry.Telemetry, ready *httpapi.Readiness, log *slog.Logger) (agent.Transport, error) {
	if !cfg.HTTP.Enabled {
		return nil, nil
	}
	token, err := cfg.HTTP.BearerToken()
	if err != nil {
		return nil, badConfig(err)
	}
	srv, err := httpapi.New(httpapi.Options{
		Listen:       cfg.HTTP.Listen,
		Token:        token,
		Limits:       agent.Limits{MaxQueryBytes: cfg.Limits.MaxQueryBytes, MaxTokens: cfg.Limits.MaxTokens},
		MaxBodyBytes: cfg.HTTP.MaxBodyBytes,
		ReadTimeout:  cfg.HTTP.ReadTimeout,
		WriteTimeout: cfg.HTTP.WriteTimeout,
		IdleTimeout:  cfg.HTTP.IdleTimeout,
		MaxInFlight:  cfg.Limits.MaxConnections,
		// The agent cancels queries still running after its grace; the
		// server waits a little longer so that their replies get written.
		ShutdownGrace: cfg.Limits.ShutdownGrace + 5*time.Second,
		Telemetry:     tel,
		Ready:         ready,
		Device:        cfg.Device,
		Log:           log,
	})
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	return srv, nil
}
