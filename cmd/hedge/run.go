package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/conversation"
	"github.com/hedge-edge/hedge/agent/store"
	"github.com/hedge-edge/hedge/agent/transport/httpapi"
	"github.com/hedge-edge/hedge/agent/transport/local"
	"github.com/hedge-edge/hedge/agent/transport/mqtt"
	"github.com/hedge-edge/hedge/models/llm"
	"github.com/hedge-edge/hedge/platform"
	"github.com/hedge-edge/hedge/systemd"
)

func loadConfig(path string) (config.Config, error) {
	if path == "" {
		path = os.Getenv("HEDGE_CONFIG")
	}
	return config.Load(path)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level)) // validated by config
	o := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

func cmdRun(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (default: $HEDGE_CONFIG, else built-in defaults)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hedge: config: %v\n", err)
		return systemd.ExitConfig
	}
	log := newLogger(cfg.Log, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("hedge stopped", "err", err)
		if errors.As(err, new(configError)) {
			return systemd.ExitConfig
		}
		return 1
	}
	return 0
}

// releaseStartup gives back, once serving, what start-up needed and serving
// does not: the heap that training and loading left (returned to the OS),
// and the code pages that only start-up ran (platform.ReleaseCodePages:
// they come back on first use).
func releaseStartup(log *slog.Logger) {
	debug.FreeOSMemory()
	before, after, err := platform.ReleaseCodePages()
	if err != nil {
		log.Warn("start-up code pages not released", "err", err)
		return
	}
	log.Info("start-up code pages released", "resident_file_mb_before", before>>20, "after", after>>20)
}

// configError marks a start-up failure that restarting cannot fix: a file
// or setting the configuration names is unusable (a world-writable
// state_dir, a secret file others can read, a model that does not load).
// hedge run exits with systemd.ExitConfig for it, which the unit does not
// restart; a busy port or a state dir locked by another hedge stays exit 1,
// which it retries.
type configError struct{ error }

func (e configError) Unwrap() error { return e.error }

// badConfig marks err as a configError; nil and a cancelled start (a stop
// during training) stay as they are.
func badConfig(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	return configError{err}
}

// run wires every component, serves until ctx ends, then closes what it
// opened in reverse order. Cancellation is not an error.
func run(ctx context.Context, cfg config.Config, log *slog.Logger) (err error) {
	var closers []func() error
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			if cerr := closers[i](); cerr != nil {
				log.Warn("close failed", "err", cerr)
			}
		}
	}()

	st, err := store.Open(cfg.StateDir, cloudStoreOptions(cfg, store.Options{
		CacheMaxEntries: cfg.Cache.MaxEntries,
		Log:             log.With("component", "store"),
	}))
	if err != nil {
		err = fmt.Errorf("state_dir: %w", err)
		if errors.Is(err, store.ErrLocked) {
			return err
		}
		return badConfig(err)
	}
	closers = append(closers, st.Close)

	tel := newTelemetry(cfg, log)
	ready := httpapi.NewReadiness("socket")
	opts := agent.Options{
		Log:            log,
		Limits:         agent.Limits{MaxQueryBytes: cfg.Limits.MaxQueryBytes, MaxTokens: cfg.Limits.MaxTokens},
		RequestTimeout: cfg.Limits.RequestTimeout,
		ShutdownGrace:  cfg.Limits.ShutdownGrace,
		CacheTTL:       cfg.Cache.TTL,
		Observe:        tel.Observe,
	}
	if cfg.SLM.Threshold > 0 {
		opts.DefaultThreshold = cfg.SLM.Threshold
	}
	if cfg.Cache.Enabled {
		opts.Cache = tel.WrapCache(st)
		opts.Semantic, opts.SemanticThreshold = st, cfg.Cache.SemanticThreshold
	}
	if c := cfg.Conversation; c.Enabled {
		opts.Memory = conversation.New(st, conversation.Options{MaxTurns: c.MaxTurns, MaxBytes: c.MaxBytes, IdleTTL: c.IdleTTL})
	}

	// MQTT comes first: it performs intent actions and delivers late cloud
	// answers. It connects in Serve, so a broker that is down does not
	// hold up the other transports.
	var (
		transports []agent.Transport
		publisher  agent.Publisher
		courier    agent.Courier
	)
	mq, closeMQTT, err := wireMQTT(ctx, cfg, st, log)
	if err != nil {
		return err
	}
	// The embedded broker stops after the agent, so that the last replies
	// still reach it.
	closers = append(closers, closeMQTT)
	if mt, ok := mq.(*mqtt.Transport); ok && mt != nil {
		publisher, courier = mt, mt
		// A reply_to that comes on the socket follows MQTT's rules too:
		// late answers are published there.
		opts.CheckReplyTo = mt.CheckReplyTo
		mt.SetSensors(mqttSensors(tel))
		tel.CountMQTT(func() map[string]int64 { return mt.Stats().Counters() })
		// MQTT is ready once connected and subscribed, and not while the
		// broker is away.
		ready.Set("mqtt", false)
		mt.SetLinkHook(func(up bool) { ready.Set("mqtt", up) })
		transports = append(transports, mt)
	}

	// Tiers, cheapest first. Each one is optional; a configured tier that
	// fails to open stops hedge with the reason, rather than serving less
	// than the config asks for.
	var versions []string
	if cfg.SLM.Enabled {
		ready.Set("slm", false)
		clf, skills, v, closeSLM, err := wireSLM(ctx, cfg, log, publisher)
		if err != nil {
			return badConfig(err)
		}
		closers = append(closers, closeSLM)
		opts.Classifier, opts.Skills, opts.SLMModel = clf, skills, v
		versions = append(versions, v)
		ready.Set("slm", true)
	}
	if cfg.LLM.Model != "" {
		gen, closeLLM, err := wireLLM(ctx, cfg, log, tel)
		switch {
		case errors.Is(err, llm.ErrNoCPUVariant):
			// The one LLM failure that is the machine's, not the
			// config's: no llama.cpp kernels run on this CPU. Loading
			// others would die with SIGILL, and under systemd in a
			// restart loop; the SLM, the cache and the cloud still serve.
			log.Error("the local LLM tier is off", "component", "llm", "err", err)
			opts.LLMOff = "no llama.cpp CPU variant runs on this CPU: see hedge doctor"
		case err != nil:
			return badConfig(err)
		default:
			closers = append(closers, closeLLM)
			opts.LLM = gen
			versions = append(versions, "llm:"+cfg.LLM.Model)
			ready.Set("llm", true)
		}
	}
	opts.CacheVersion = strings.Join(append(versions, lengthVersion(cfg)), "+")
	cloud, runCloud, err := wireCloud(ctx, cfg, st, courier, log, opts.CacheVersion, tel)
	if err != nil {
		return err
	}
	if cloud != nil {
		opts.Cloud = cloud
	}

	sock, err := local.Listen(cfg.Socket, local.Options{
		MaxRequestBytes: agent.MaxRequestBytes(cfg.Limits.MaxQueryBytes),
		Limits:          opts.Limits,
		MaxConnections:  cfg.Limits.MaxConnections,
		Log:             log.With("component", "socket"),
	})
	if err != nil {
		return badConfig(err)
	}
	closers = append(closers, sock.Close)
	ready.Set("socket", true)
	transports = append(transports, sock)

	web, err := wireHTTP(ctx, cfg, tel, ready, opts.LLM, log)
	if err != nil {
		return err
	}
	if web != nil {
		transports = append(transports, web)
	}
	wy, err := wireWyoming(cfg, log)
	if err != nil {
		return err
	}
	if wy != nil {
		closers = append(closers, wy.Close)
		transports = append(transports, wy)
	}

	a := agent.New(opts)
	// The cloud bridge's monitor and outbox drain run beside the agent and
	// end with it, before the store closes.
	cloudDone := make(chan error, 1)
	cloudCtx, stopCloud := context.WithCancel(ctx)
	defer stopCloud()
	if runCloud != nil {
		go func() { cloudDone <- runCloud(cloudCtx) }()
	} else {
		cloudDone <- nil
	}

	// READY=1 only now: every listener is open.
	if _, err := platform.Notify("READY=1"); err != nil {
		log.Warn("sd_notify failed", "err", err)
	}
	go releaseStartup(log)
	// The watchdog pings only while the store answers, no query is held
	// far past its timeout and hedge is not shutting down, so systemd
	// restarts a hedge that hangs; /readyz reports the same pipeline.
	// It ends with run, not only with ctx: a transport that fails returns
	// from run with ctx still live, and the store closes behind it.
	watchCtx, stopWatchdog := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	defer func() { stopWatchdog(); <-watchDone }()
	healthy := pipelineHealth(watchCtx, st, a, agent.StallBound(cfg.Limits.RequestTimeout))
	ready.Watch("pipeline", healthy)
	go func() {
		defer close(watchDone)
		if err := platform.Watchdog(watchCtx, healthy, log); err != nil {
			log.Warn("watchdog off", "err", err)
		}
	}()
	stopNotify := context.AfterFunc(ctx, func() { _, _ = platform.Notify("STOPPING=1") })
	defer stopNotify()

	log.Info("hedge ready", "device", cfg.Device, "socket", cfg.Socket, "state_dir", filepath.Clean(cfg.StateDir),
		"slm", opts.Classifier != nil, "llm", opts.LLM != nil, "cloud", opts.Cloud != nil, "mqtt", mq != nil, "http", web != nil, "wyoming", cfg.Wyoming.Listen)
	err = a.Run(ctx, transports...)
	stopCloud()
	if cerr := <-cloudDone; cerr != nil && !errors.Is(cerr, context.Canceled) && err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("hedge stopped")
	return nil
}

// lengthVersion is the part of the cache version the tiers' own answer
// lengths make: a query without max_tokens is answered up to llm.max_tokens
// or cloud.max_tokens (which also caps a query's own), so an answer cached
// under one bound must not be served once the bound changed.
func lengthVersion(cfg config.Config) string {
	return fmt.Sprintf("max_tokens:%d/%d", cfg.LLM.MaxTokens, cfg.Cloud.MaxTokens)
}
