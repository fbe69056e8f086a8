package ollama

import (
	"net/http"
	"time"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/transport/httpapi/chat"
)

// reply is one object of a chat or generate reply: the whole reply, a
// streamed chunk, or the final chunk with the counts. Chat replies carry
// message, generate replies response (always, "" included: clients
// concatenate it).
type reply struct {
	Model      string   `json:"model"`
	CreatedAt  string   `json:"created_at"`
	Message    *message `json:"message,omitempty"`
	Response   *string  `json:"response,omitempty"`
	Done       bool     `json:"done"`
	DoneReason string   `json:"done_reason,omitempty"`
	// The counts of the final chunk. Durations are nanoseconds; hedge
	// knows the whole request's time, and token counts only for answers
	// the local LLM generated now (docs/ollama.md), so the others are
	// left out.
	TotalDuration   int64 `json:"total_duration,omitempty"`
	PromptEvalCount int   `json:"prompt_eval_count,omitempty"`
	EvalCount       int   `json:"eval_count,omitempty"`
	Hedge           *info `json:"hedge,omitempty"`
}

// info is the hedge object: which tier answered and why, and what became
// of a format request's answer.
type info struct {
	*chat.Info
	// Format is "json" when the answer was JSON, "wrapped" when it was
	// not and hedge sent it as one JSON string.
	Format string `json:"format,omitempty"`
}

// shape makes the reply objects of one request: chat's or generate's.
type shape struct {
	model string
	chat  bool
}

func (s shape) chunk(text string) reply {
	r := reply{Model: s.model, CreatedAt: timestamp(time.Now())}
	if s.chat {
		r.Message = &message{Role: "assistant", Content: text}
	} else {
		r.Response = &text
	}
	return r
}

// final is the last object of a's reply, text its content ("" when it
// was streamed) and started when the request came.
func (s shape) final(text string, a agent.Answer, started time.Time, hedge *info) reply {
	r := s.chunk(text)
	r.Done, r.DoneReason = true, chat.StopReason(a)
	r.TotalDuration = time.Since(started).Nanoseconds()
	if a.Usage != nil {
		r.PromptEvalCount, r.EvalCount = a.Usage.PromptTokens, a.Usage.CompletionTokens
	}
	r.Hedge = hedge
	return r
}

func (a *API) chat(w http.ResponseWriter, r *http.Request) {
	started := time.Now()
	var req request
	body, perr := chat.ReadBody(w, r, a.o.BodyMax)
	if perr == nil {
		perr = chat.Decode(body, &req, "chat request")
	}
	if perr != nil {
		writeRequestError(w, perr)
		return
	}
	set, perr := req.settings(a)
	if perr == nil {
		perr = checkTools(req.Tools)
	}
	if perr != nil {
		writeRequestError(w, perr)
		return
	}
	sh := shape{model: req.Model, chat: true}
	if len(req.Messages) == 0 {
		a.residency(w, r, sh, set)
		return
	}
	text, system, hist, perr := conversation(req.Messages)
	if perr != nil {
		writeRequestError(w, perr)
		return
	}
	a.answer(w, r, sh, set, agent.Query{Text: text, System: system, History: hist}, started)
}

func (a *API) generate(w http.ResponseWriter, r *http.Request) {
	started := time.Now()
	var req request
	body, perr := chat.ReadBody(w, r, a.o.BodyMax)
	if perr == nil {
		perr = chat.Decode(body, &req, "generate request")
	}
	if perr != nil {
		writeRequestError(w, perr)
		return
	}
	set, perr := req.settings(a)
	if perr == nil && len(req.Images) > 0 {
		perr = chat.BadRequest("images", "the request has images; hedge reads text only")
	}
	if perr != nil {
		writeRequestError(w, perr)
		return
	}
	sh := shape{model: req.Model}
	if req.Prompt == "" {
		a.residency(w, r, sh, set)
		return
	}
	a.answer(w, r, sh, set, agent.Query{Text: req.Prompt, System: req.System}, started)
}

// residency answers the forms without a question: keep_alive 0 unloads
// the local model at once (done_reason "unload"), anything else loads it
// ("load"). Without a local LLM there is nothing to load or free.
func (a *API) residency(w http.ResponseWriter, r *http.Request, sh shape, set settings) {
	rep := sh.chunk("")
	rep.Done, rep.DoneReason = true, "load"
	switch {
	case set.unload:
		rep.DoneReason = "unload"
		if a.o.Loader != nil && !a.o.Loader.Unload() {
			WriteError(w, http.StatusConflict, "the local model is answering a request; it was not unloaded, retry when it is done")
			return
		}
	case a.o.Loader != nil:
		if err := a.o.Loader.Load(r.Context()); err != nil {
			WriteError(w, http.StatusInternalServerError, "load the local model: "+err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, rep)
}

// answer asks q and writes its reply, streamed or whole. A format request
// is never streamed token by token: its answer is checked as a whole
// first (formatted), then sent as one chunk.
func (a *API) answer(w http.ResponseWriter, r *http.Request, sh shape, set settings, q agent.Query, started time.Time) {
	release, busy := a.o.Admit()
	if busy != nil {
		writeRequestError(w, busy)
		return
	}
	defer release()
	q.ID, q.Prefer, q.MaxTokens = newID(), set.model.Prefer, set.maxTokens
	q.Transport, q.Caller = a.o.Transport, a.o.Caller(r)
	q.Stream = set.stream && set.format == nil
	if set.format != nil {
		q.System = set.format.instruct(q.System)
	}
	rc := http.NewResponseController(w)
	defer a.unloadAfter(set)
	if q.Stream {
		a.stream(w, r, rc, sh, q, started)
		return
	}
	ans := a.h.Handle(r.Context(), q, nil)
	a.o.ExtendWrite(rc)
	if ans.Error != nil {
		writeAgentError(w, ans)
		return
	}
	text, hedge := ans.Answer, &info{Info: chat.InfoOf(ans)}
	if set.format != nil {
		text, hedge.Format = formatted(text)
	}
	if !set.stream {
		writeJSON(w, http.StatusOK, sh.final(text, ans, started, hedge))
		return
	}
	nd := newNDJSON(w, rc, a.o.ExtendWrite)
	nd.start()
	nd.send(sh.chunk(text))
	nd.send(sh.final("", ans, started, hedge))
}

// unloadAfter frees the local model after a request that asked for
// keep_alive 0, as Ollama does.
func (a *API) unloadAfter(set settings) {
	if set.unload && a.o.Loader != nil {
		a.o.Loader.Unload()
	}
}

// writeAgentError writes an answer's error as Ollama's error reply with
// the status the OpenAI API gives the same code.
func writeAgentError(w http.ResponseWriter, a agent.Answer) {
	WriteError(w, chat.StatusOf(a.Error.Code), a.Error.Message)
}
