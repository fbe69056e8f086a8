package chat

import (
	"fmt"
	"strings"

	"github.com/hedge-edge/hedge/agent"
)

// Model is one model hedge offers. The three hedge-… models are routing
// preferences, not networks; the local LLM's own name, when one is
// configured, is offered too and stands for the local tiers.
type Model struct {
	ID     string
	Prefer agent.Prefer
	// Local is set for the configured GGUF's entry.
	Local bool
}

// Catalog is the set of models a server offers. It is immutable and safe
// for concurrent use.
type Catalog struct {
	models []Model
}

// NewCatalog returns hedge-auto, hedge-local and hedge-cloud, and local
// (the configured GGUF's name) when it is not "" and not one of them.
func NewCatalog(local string) Catalog {
	c := Catalog{models: []Model{
		{ID: "hedge-auto", Prefer: agent.PreferAuto},
		{ID: "hedge-local", Prefer: agent.PreferLocal},
		{ID: "hedge-cloud", Prefer: agent.PreferCloud},
	}}
	if _, taken := c.Find(local); local != "" && !taken {
		c.models = append(c.models, Model{ID: local, Prefer: agent.PreferLocal, Local: true})
	}
	return c
}

// Models lists the catalog, the preferences first.
func (c Catalog) Models() []Model { return c.models }

// Find returns the model named id exactly; a miss returns ok == false.
func (c Catalog) Find(id string) (Model, bool) {
	for _, m := range c.models {
		if m.ID == id {
			return m, true
		}
	}
	return Model{}, false
}

// Unknown is the message for a model the catalog does not hold.
func (c Catalog) Unknown(id string) string {
	return fmt.Sprintf("the model %q does not exist; hedge offers %s", id, c.Offered())
}

// Offered lists the catalog's ids: "hedge-auto, hedge-local, hedge-cloud".
func (c Catalog) Offered() string {
	ids := make([]string, len(c.models))
	for i, m := range c.models {
		ids[i] = m.ID
	}
	return strings.Join(ids, ", ")
}
