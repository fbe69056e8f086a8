package main

import (
	"log/slog"

	"github.com/hedge-edge/hedge/agent/config"
	"github.com/hedge-edge/hedge/agent/transport/wyoming"
)

// intentLanguages are the languages hedge advertises to Wyoming peers. An
// intents file names no language yet; the starter set is English.
var intentLanguages = []string{"en"}

// wireWyoming opens the Wyoming intent service when wyoming.listen is set;
// it returns nil, nil when it is not. The listener is open when it returns.
func wireWyoming(cfg config.Config, log *slog.Logger) (*wyoming.Server, error) {
	if cfg.Wyoming.Listen == "" {
		return nil, nil
	}
	srv, err := wyoming.Listen(wyoming.Options{
		Listen:         cfg.Wyoming.Listen,
		Languages:      intentLanguages,
		Version:        version,
		MaxTextBytes:   cfg.Limits.MaxQueryBytes,
		MaxConnections: cfg.Limits.MaxConnections,
		Log:            log.With("component", "wyoming"),
	})
	if err != nil {
		return nil, badConfig(err)
	}
	return srv, nil
}
