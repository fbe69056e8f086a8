package config

import (
	"fmt"
	"strings"
)

// Wyoming configures the Wyoming intent service for Home Assistant
// (agent/transport/wyoming, docs/wyoming.md).
type Wyoming struct {
	// Listen is host:port, such as 127.0.0.1:10700; empty (the default)
	// serves no Wyoming. The protocol has no authentication: a host beyond
	// loopback lets anyone who reaches the port ask hedge.
	Listen string `yaml:"listen"`
}

// DefaultWyomingPort is the port docs/wyoming.md suggests (Wyoming
// intent services commonly use 10700 and up).
const DefaultWyomingPort = 10700

func (w *Wyoming) env() []envOverride {
	return []envOverride{{"HEDGE_WYOMING_LISTEN", setString(&w.Listen)}}
}

func (w *Wyoming) validate() []string {
	if w.Listen == "" {
		return nil
	}
	why := ""
	if strings.HasPrefix(w.Listen, UnixPrefix) {
		why = "must be host:port such as 127.0.0.1:10700 (Home Assistant reaches Wyoming over TCP)"
	} else if _, err := ListenIsLocal(w.Listen); err != nil {
		why = strings.Replace(err.Error(), "127.0.0.1:8080, or unix:/path", fmt.Sprintf("127.0.0.1:%d", DefaultWyomingPort), 1)
	}
	if why != "" {
		return []string{Problem("wyoming.listen", fmt.Sprintf("%q", w.Listen), why)}
	}
	return nil
}
