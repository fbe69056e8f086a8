package wyoming

import "github.com/hedge-edge/hedge/agent"

// outEvent is one event to write: its type and its data section.
type outEvent struct {
	typ  string
	data any
}

type textData struct {
	Text string `json:"text"`
}

type errorData struct {
	Text string `json:"text"`
	Code string `json:"code,omitempty"`
}

// entity is one of an intent's entities: a slot's name and value.
type entity struct {
	Name  string `json:"name"`
	Value any    `json:"value,omitempty"`
}

type intentData struct {
	Name string `json:"name"`
	// Entities is always a list, empty while agent.Answer carries no slots.
	Entities []entity `json:"entities"`
	// Text is hedge's answer, which Home Assistant speaks when its own
	// handler of the intent says nothing.
	Text string `json:"text,omitempty"`
}

func errorEvent(code, text string) outEvent {
	return outEvent{"error", errorData{Text: text, Code: code}}
}

// outcome is the event that answers a transcript, given hedge's answer:
//
//   - intent when the SLM accepted one of hedge's intents and answered it,
//     now or from the cache;
//   - handled with the answer's text when another tier (the local LLM, the
//     cloud, or the cache of theirs) answered;
//   - error for a transcript the agent refused as bad input (bad_request,
//     too_large): the peer sent something wrong;
//   - not-recognized, with the reason, for every other error (no_tier when
//     no tier can answer an intent below its threshold, busy, timeout,
//     shutting_down, …) and for an empty answer.
func outcome(a agent.Answer) outEvent {
	if e := a.Error; e != nil {
		if e.Code == agent.CodeBadRequest || e.Code == agent.CodeTooLarge {
			return errorEvent(string(e.Code), e.Message)
		}
		return outEvent{"not-recognized", textData{Text: e.Message}}
	}
	if a.Intent != "" && (a.Tier == agent.TierSLM || a.Tier == agent.TierCache && a.CachedFrom == agent.TierSLM) {
		// agent.Answer carries no slots yet, so there are no entities.
		return outEvent{"intent", intentData{Name: a.Intent, Entities: []entity{}, Text: a.Answer}}
	}
	if a.Answer != "" {
		return outEvent{"handled", textData{Text: a.Answer}}
	}
	return outEvent{"not-recognized", textData{Text: "hedge has no answer to this"}}
}

// The info event's parts (Wyoming's info: programs of models).
type (
	attribution struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	}
	intentModel struct {
		Name        string      `json:"name"`
		Description string      `json:"description"`
		Attribution attribution `json:"attribution"`
		Installed   bool        `json:"installed"`
		Version     string      `json:"version"`
		Languages   []string    `json:"languages"`
	}
	intentProgram struct {
		Name        string        `json:"name"`
		Description string        `json:"description"`
		Attribution attribution   `json:"attribution"`
		Installed   bool          `json:"installed"`
		Version     string        `json:"version"`
		Models      []intentModel `json:"models"`
	}
	infoData struct {
		ASR    []struct{}      `json:"asr"`
		TTS    []struct{}      `json:"tts"`
		Handle []struct{}      `json:"handle"`
		Intent []intentProgram `json:"intent"`
		Wake   []struct{}      `json:"wake"`
	}
)

var hedgeAttribution = attribution{Name: "hedge", URL: "https://github.com/hedge-edge/hedge"}

// infoEvent advertises hedge as one intent program with one model, its
// intents, in languages. Home Assistant takes the languages from the
// installed models.
func infoEvent(languages []string, version string) outEvent {
	model := intentModel{
		Name:        "hedge-intents",
		Description: "hedge's intents, answered on the device (SLM), else by its local LLM or cloud tier",
		Attribution: hedgeAttribution,
		Installed:   true,
		Version:     version,
		Languages:   languages,
	}
	prog := intentProgram{
		Name:        "hedge",
		Description: "hedge, an edge AI agent: intents on the device, other questions to its LLM or cloud tier",
		Attribution: hedgeAttribution,
		Installed:   true,
		Version:     version,
		Models:      []intentModel{model},
	}
	return outEvent{"info", infoData{ASR: []struct{}{}, TTS: []struct{}{}, Handle: []struct{}{}, Intent: []intentProgram{prog}, Wake: []struct{}{}}}
}
