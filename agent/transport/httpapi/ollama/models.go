package ollama

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/hedge-edge/hedge/agent/transport/httpapi/chat"
)

// modelEntry is a model of /api/tags and /api/ps.
type modelEntry struct {
	Name       string  `json:"name"`
	Model      string  `json:"model"`
	ModifiedAt string  `json:"modified_at,omitempty"`
	Size       int64   `json:"size"`
	Digest     string  `json:"digest"`
	Details    details `json:"details"`
	// SizeVRAM is /api/ps's: hedge runs on the CPU.
	SizeVRAM *int64 `json:"size_vram,omitempty"`
}

type details struct {
	ParentModel       string   `json:"parent_model"`
	Format            string   `json:"format"`
	Family            string   `json:"family"`
	Families          []string `json:"families"`
	ParameterSize     string   `json:"parameter_size"`
	QuantizationLevel string   `json:"quantization_level"`
}

type modelList struct {
	Models []modelEntry `json:"models"`
}

// entry is m as Ollama lists it: a name with its tag, the GGUF's file
// facts for the local model, and for a routing preference size 0 and
// format and family "hedge".
func (a *API) entry(m chat.Model) modelEntry {
	name := m.ID + ":latest"
	e := modelEntry{Name: name, Model: name, ModifiedAt: timestamp(a.o.Started), Digest: digest(m.ID),
		Details: details{Format: "hedge", Family: "hedge", Families: []string{"hedge"}}}
	if m.Local {
		l := a.o.Local
		e.Size = l.Size
		if !l.ModifiedAt.IsZero() {
			e.ModifiedAt = timestamp(l.ModifiedAt)
		}
		e.Details = details{Format: "gguf", Family: l.Family, Families: []string{l.Family},
			ParameterSize: l.ParameterSize, QuantizationLevel: l.Quantization}
	}
	return e
}

func (a *API) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": APIVersion})
}

// tags lists every model hedge offers.
func (a *API) tags(w http.ResponseWriter, r *http.Request) {
	l := modelList{Models: []modelEntry{}}
	for _, m := range a.o.Catalog.Models() {
		l.Models = append(l.Models, a.entry(m))
	}
	writeJSON(w, http.StatusOK, l)
}

// ps lists the models that answer now: the routing preferences always,
// the local model while it is in memory.
func (a *API) ps(w http.ResponseWriter, r *http.Request) {
	l := modelList{Models: []modelEntry{}}
	for _, m := range a.o.Catalog.Models() {
		if m.Local && (a.o.Loader == nil || !a.o.Loader.Loaded()) {
			continue
		}
		e := a.entry(m)
		e.ModifiedAt = ""
		var vram int64
		e.SizeVRAM = &vram
		l.Models = append(l.Models, e)
	}
	writeJSON(w, http.StatusOK, l)
}

// nameRequest is the body of /api/show and /api/pull: the model, under
// its current name or the older "name".
type nameRequest struct {
	Model  string `json:"model"`
	Name   string `json:"name"`
	Stream *bool  `json:"stream"`
}

func (n nameRequest) model() string {
	if n.Model != "" {
		return n.Model
	}
	return n.Name
}

func (a *API) readName(w http.ResponseWriter, r *http.Request, what string) (nameRequest, *chat.Error) {
	var req nameRequest
	body, perr := chat.ReadBody(w, r, a.o.BodyMax)
	if perr == nil {
		perr = chat.Decode(body, &req, what)
	}
	return req, perr
}

type showReply struct {
	Modelfile    string         `json:"modelfile"`
	Parameters   string         `json:"parameters"`
	Template     string         `json:"template"`
	Details      details        `json:"details"`
	ModelInfo    map[string]any `json:"model_info"`
	Capabilities []string       `json:"capabilities"`
	ModifiedAt   string         `json:"modified_at"`
}

// show describes one model. Its capabilities are "completion" only: tools
// are accepted but not yet called (docs/ollama.md).
func (a *API) show(w http.ResponseWriter, r *http.Request) {
	req, perr := a.readName(w, r, "show request")
	if perr != nil {
		writeRequestError(w, perr)
		return
	}
	m, perr := a.lookup(req.model())
	if perr != nil {
		writeRequestError(w, perr)
		return
	}
	e := a.entry(m)
	info := map[string]any{"general.architecture": e.Details.Family, "hedge.prefer": string(m.Prefer)}
	writeJSON(w, http.StatusOK, showReply{
		Details: e.Details, ModelInfo: info, Capabilities: []string{"completion"}, ModifiedAt: e.ModifiedAt,
	})
}

// pull answers success for a model hedge serves already; it downloads
// nothing over the API: a model of hedge's catalog is the operator's to
// pull on the device, with its checksum checked (hedge models pull).
func (a *API) pull(w http.ResponseWriter, r *http.Request) {
	req, perr := a.readName(w, r, "pull request")
	if perr != nil {
		writeRequestError(w, perr)
		return
	}
	name := req.model()
	if _, perr := a.lookup(name); perr == nil {
		writeStatus(w, req.Stream == nil || *req.Stream)
		return
	} else if perr.Status != http.StatusNotFound {
		writeRequestError(w, perr)
		return
	}
	if a.o.Pullable != nil && a.o.Pullable(name) {
		WriteError(w, http.StatusNotImplemented, fmt.Sprintf(
			"hedge does not download models over its API: on the device, run `hedge models pull %s`, set llm.model: %s and restart hedge", name, name))
		return
	}
	WriteError(w, http.StatusNotFound, fmt.Sprintf(
		"pull model %q: hedge's model catalog has no such model (`hedge models list --available` shows it); hedge offers %s", name, a.o.Catalog.Offered()))
}

// writeStatus writes pull's success, as one object or a stream of one.
func writeStatus(w http.ResponseWriter, stream bool) {
	if stream {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "success"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "success"})
}
