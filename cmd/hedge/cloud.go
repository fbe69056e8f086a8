package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/store"
	"github.com/hedge-edge/hedge/agent/telemetry"
	"github.com/hedge-edge/hedge/cloudbridge"
	"github.com/hedge-edge/hedge/cloudbridge/anonymize"
)

// wireCloud builds the cloud tier: the anonymizer, the go-openai client
// behind the circuit breaker, the budget and the outbox in st. It returns
// nil, nil, nil when cloud.base_url is "" (the tier is off). run monitors
// the link and drains the outbox until its ctx ends; the caller runs it
// beside the agent. cacheVersion must be the agent's CacheVersion so that
// late answers land in the agent's cache; metrics may be nil. courier
// delivers late answers (the MQTT transport); nil only caches them.
//
// The store's outbox bounds come from cfg.Cloud.Outbox: open st with
// cloudStoreOptions.
func wireCloud(ctx context.Context, cfg config.Config, st *store.Store, courier agent.Courier, log *slog.Logger,
	cacheVersion string, metrics cloudbridge.Metrics) (cloud agent.Cloud, run func(ctx context.Context) error, err error) {
	c := cfg.Cloud
	if c.BaseURL == "" {
		return nil, nil, nil
	}
	key, err := c.Key()
	if err != nil {
		return nil, nil, badConfig(fmt.Errorf("cloud: %w", err))
	}
	if key == "" && c.BaseURL == config.OpenAIBaseURL {
		log.Warn("cloud: no API key for OpenAI; set HEDGE_CLOUD_API_KEY or cloud.api_key_file")
	}
	policy := map[anonymize.Kind]anonymize.Action{}
	for k, v := range c.Anonymize.Policy {
		policy[anonymize.Kind(k)] = anonymize.Action(v)
	}
	anon, err := anonymize.New(anonymize.Options{
		Names: anonymize.Names{
			People: c.Anonymize.People, Orgs: c.Anonymize.Organizations, Locations: c.Anonymize.Locations,
			Owner: c.Anonymize.Owner, Household: c.Anonymize.Household, Location: c.Anonymize.Location,
		},
		Policy:     policy,
		MinEntropy: c.Anonymize.MinEntropy,
	})
	if err != nil {
		return nil, nil, badConfig(fmt.Errorf("cloud: %w", err))
	}
	if courier == nil {
		log.Info("cloud: no courier for late answers; queued escalations will only be cached")
	}
	b, err := cloudbridge.New(cloudbridge.Options{
		BaseURL: c.BaseURL, Model: c.Model, APIKey: key.Reveal(), SystemPrompt: c.SystemPrompt,
		Timeout: c.Timeout, ConnectTimeout: c.ConnectTimeout, MaxTokens: c.MaxTokens, Stream: c.Stream,
		Failures: c.Breaker.Failures, BackoffMin: c.Breaker.BackoffMin, BackoffMax: c.Breaker.BackoffMax,
		Concurrency: c.Outbox.Concurrency, MaxAttempts: c.Outbox.MaxAttempts, MaxAge: c.Outbox.MaxAge,
		Budget: cloudbridge.Budget{
			RequestsPerDay: c.Budget.RequestsPerDay, TokensPerDay: c.Budget.TokensPerDay,
			CallerRequestsPerDay: c.Budget.CallerRequestsPerDay, CallerTokensPerDay: c.Budget.CallerTokensPerDay,
		},
		Anonymizer:   anon,
		State:        st,
		Courier:      courier,
		CacheVersion: cacheVersion,
		CacheTTL:     cloudCacheTTL(cfg),
		Metrics:      metrics,
		Log:          log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("cloud: %w", err)
	}
	log.Info("cloud tier on", "base_url", c.BaseURL, "model", c.Model, "stream", c.Stream)
	return b, b.Run, nil
}

// cloudCacheTTL is how long a late cloud answer is cached: the answer
// cache's TTL, or not at all when the cache is off.
func cloudCacheTTL(cfg config.Config) time.Duration {
	if !cfg.Cache.Enabled {
		return 0
	}
	return cfg.Cache.TTL
}

// cloudStoreOptions are the store options of the outbox bounds.
func cloudStoreOptions(cfg config.Config, o store.Options) store.Options {
	o.OutboxMaxCount = cfg.Cloud.Outbox.MaxEntries
	o.OutboxMaxBytes = cfg.Cloud.Outbox.MaxBytes
	o.OutboxMaxAge = cfg.Cloud.Outbox.MaxAge
	return o
}

// The telemetry takes the bridge's link, outbox and token figures.
var _ cloudbridge.Metrics = (*telemetry.Telemetry)(nil)
