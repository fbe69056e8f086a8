package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/telemetry"
	"github.com/hedge-edge/hedge/agent/transport/httpapi"
	"github.com/hedge-edge/hedge/agent/transport/httpapi/ollama"
	"github.com/hedge-edge/hedge/models"
	"github.com/hedge-edge/hedge/models/gguf"
	"github.com/hedge-edge/hedge/models/llm"
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
// gen is the local LLM tier, nil when off: Ollama's API lists its model
// and loads and unloads it.
func wireHTTP(ctx context.Context, cfg config.Config, tel *telemetry.Telemetry, ready *httpapi.Readiness, gen agent.Generator, log *slog.Logger) (agent.Transport, error) {
	if !cfg.HTTP.Enabled {
		return nil, nil
	}
	token, err := cfg.HTTP.BearerToken()
	if err != nil {
		return nil, badConfig(err)
	}
	var loader ollama.Loader
	if l, ok := gen.(ollama.Loader); ok {
		loader = l
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
		LocalModel:    localModel(cfg, gen, log),
		Loader:        loader,
		Pullable:      func(name string) bool { _, ok := models.DefaultCatalog().Lookup(name); return ok },
		Log:           log,
	})

	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	return srv, nil
}

// localModel describes the local LLM's GGUF for Ollama's model lists: its
// name, file size and time, architecture, parameter count and the type
// most of its weights have. The zero value (no local model) without the
// tier; a file it cannot read is listed by name only.
func localModel(cfg config.Config, llm agent.Generator, log *slog.Logger) ollama.LocalModel {
	if llm == nil {
		return ollama.LocalModel{}
	}
	path, name, err := modelStore(cfg).Resolve(cfg.LLM.Model)
	if err != nil {
		return ollama.LocalModel{}
	}
	m := ollama.LocalModel{Name: name}
	st, err := os.Stat(path)
	info, ierr := gguf.Inspect(path)
	if err != nil || ierr != nil {
		log.Warn("local model not described for the Ollama API", "component", "http", "err", errors.Join(err, ierr))
		return m
	}
	m.Size, m.ModifiedAt = st.Size(), st.ModTime()
	m.Family = info.String("general.architecture")
	params, byType := int64(0), map[gguf.Type]uint64{}
	for _, t := range info.Tensors {
		params += int64(t.Elements())
		byType[t.Type] += t.Elements()
	}
	m.ParameterSize = parameterSize(params)
	var most uint64
	for typ, n := range byType {
		if n > most {
			most, m.Quantization = n, typ.String()
		}
	}
	return m
}

// parameterSize writes n as Ollama does: "260K", "494M", "1.5B".
func parameterSize(n int64) string {
	switch {
	case n >= 1e9:
		return strconv.FormatFloat(float64(n)/1e9, 'f', 1, 64) + "B"
	case n >= 1e6:
		return strconv.FormatInt(n/1e6, 10) + "M"
	case n >= 1e3:
		return strconv.FormatInt(n/1e3, 10) + "K"
	}
	return strconv.FormatInt(n, 10)
}

var _ ollama.Loader = (*llm.Generator)(nil)
