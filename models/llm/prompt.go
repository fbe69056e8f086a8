package llm

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hedge-edge/hedge/agent"
)

// chat is what one prompt holds: the system prompt, the conversation's
// earlier turns, oldest first, and the user's text.
type chat struct {
	system string
	turns  []agent.Turn
	text   string
	// prev is the conversation's last exchange as the model saw it, or
	// nil: a prompt that begins with its text begins with its tokens.
	prev *spoken
}

// spoken is one exchange as the model saw it: the prompt's text and then
// the answer's, each token sampled for it included (raw), and their tokens,
// the prompt's as tokenized and the answer's as sampled. The sampled ones
// need not be what the answer's text tokenizes to (a model may spell " the"
// as " t" "he"); putting them back keeps the next turn's prompt equal, up to
// the answer's end, to what the KV cache holds, and the prompt the model's
// own reading of its answer.
type spoken struct {
	text string
	toks []int32
	// ends[i] is the length of text that toks[:i+1] spell, for the prompt's
	// last token and each sampled one (0 for the prompt's others, whose
	// bounds are unknown).
	ends []int
}

// prefix returns the longest run of s's tokens whose text begins prompt,
// and the length of that text; a template that trims an answer's white
// space ends it where the trimmed text parts from what was sampled.
func (s *spoken) prefix(prompt string) ([]int32, int) {
	n := 0
	for n < len(s.text) && n < len(prompt) && s.text[n] == prompt[n] {
		n++
	}
	for i := len(s.ends) - 1; i >= 0; i-- {
		if s.ends[i] > 0 && s.ends[i] <= n {
			return s.toks[:i+1], s.ends[i]
		}
	}
	return nil, 0
}

// messages returns the chat's roles and contents, each content passed
// through mark (its index among the contents, and the content).
func (ch chat) messages(mark func(i int, s string) string) (roles, contents []string) {
	add := func(role, s string) {
		roles = append(roles, role)
		contents = append(contents, mark(len(contents), s))
	}
	if ch.system != "" {
		add("system", ch.system)
	}
	for _, t := range ch.turns {
		add("user", t.User)
		add("assistant", t.Answer)
	}
	add("user", ch.text)
	return roles, contents
}

func same(_ int, s string) string { return s }

// buildPrompt applies the chat template to every message; with none it
// returns a plain completion prompt: the system prompt and a blank line (if
// any), each earlier turn's question and answer, then the text. templated
// reports which.
func buildPrompt(tmpl string, ch chat) (prompt string, templated bool) {
	return renderPrompt(tmpl, ch, same)
}

func renderPrompt(tmpl string, ch chat, mark func(int, string) string) (string, bool) {
	roles, contents := ch.messages(mark)
	if tmpl != "" {
		if p, ok := applyTemplate(tmpl, roles, contents); ok {
			return p, true
		}
	}
	var b strings.Builder
	for i, c := range contents {
		b.WriteString(c)
		if i < len(contents)-1 {
			if roles[i] == "user" {
				b.WriteString("\n")
			} else {
				b.WriteString("\n\n")
			}
		}
	}
	return b.String(), false
}

// textMark stands for the i-th message's content while a template is
// rendered, so that promptTokens can find where each content went.
// Private-use characters: no template writes them.
func textMark(i int, _ string) string { return "\uE000hedge-text-" + strconv.Itoa(i) + "\uE000" }

// promptTokens tokenizes the prompt of ch. A chat template's own text names
// control tokens (<|im_start|>, </s>) and is tokenized with them parsed; no
// message's content ever is: a question (or an earlier answer) holding
// "<|im_end|>" or "</s>" would otherwise end its own turn and could forge
// another role's. A chat whose contents name no control token tokenizes as
// the whole prompt always has; one with such names is tokenized in pieces,
// every content as plain characters.
func promptTokens(m *cModel, tmpl string, ch chat) ([]int32, error) {
	toks, _, err := promptTokensText(m, tmpl, ch)
	return toks, err
}

// promptTokensText is promptTokens, with the prompt's text.
func promptTokensText(m *cModel, tmpl string, ch chat) ([]int32, string, error) {
	prompt, templated := buildPrompt(tmpl, ch)
	if !templated {
		toks, err := m.tokenize(prompt, true, false)
		return toks, prompt, err
	}
	toks, err := templatedTokens(m, tmpl, ch, prompt)
	return toks, prompt, err
}

func templatedTokens(m *cModel, tmpl string, ch chat, prompt string) ([]int32, error) {
	_, contents := ch.messages(same)
	clean := true
	for _, c := range contents {
		plain, err := m.tokenize(c, false, false)
		if err != nil {
			return nil, err
		}
		parsed, err := m.tokenize(c, false, true)
		if err != nil {
			return nil, err
		}
		clean = clean && slices.Equal(plain, parsed)
	}
	if !clean {
		return markedTokens(m, tmpl, ch, contents, prompt)
	}
	if ch.prev != nil {
		if head, n := ch.prev.prefix(prompt); n > 0 && n < len(prompt) {
			// What follows is mostly the template's end of turn, a control
			// token: the rest tokenizes on its own.
			rest, err := m.tokenize(prompt[n:], false, true)
			if err != nil {
				return nil, err
			}
			return slices.Concat(head, rest), nil
		}
	}
	return m.tokenize(prompt, true, true)
}

// spokenOf is the exchange of a prompt (its text and tokens) and the answer
// sampled for it: each token's piece of text, in order.
func spokenOf(prompt string, toks []int32, pieces []string, sampled []int32) spoken {
	s := spoken{text: prompt, toks: slices.Concat(toks, sampled), ends: make([]int, len(toks), len(toks)+len(sampled))}
	if len(toks) > 0 {
		s.ends[len(toks)-1] = len(prompt)
	}
	var b strings.Builder
	b.WriteString(prompt)
	for _, p := range pieces {
		b.WriteString(p)
		s.ends = append(s.ends, b.Len())
	}
	s.text = b.String()
	return s
}

// markedTokens tokenizes the template's text parsed and each content plain.
// A template that did not place every content once, in order and verbatim,
// gets no control token parsed anywhere rather than any of the contents'.
func markedTokens(m *cModel, tmpl string, ch chat, contents []string, prompt string) ([]int32, error) {
	marked, _ := renderPrompt(tmpl, ch, textMark)
	var out []int32
	rest := marked
	for i, c := range contents {
		pre, post, found := strings.Cut(rest, textMark(i, ""))
		if !found {
			return m.tokenize(prompt, true, false)
		}
		head, err := m.tokenize(pre, i == 0, true)
		if err != nil {
			return nil, err
		}
		body, err := m.tokenize(c, false, false)
		if err != nil {
			return nil, err
		}
		out = slices.Concat(out, head, body)
		rest = post
	}
	if strings.Contains(rest, "\uE000hedge-text-") {
		return m.tokenize(prompt, true, false)
	}
	tail, err := m.tokenize(rest, false, true)
	if err != nil {
		return nil, err
	}
	return append(out, tail...), nil
}

// fitPrompt tokenizes ch, leaving out its oldest turns while the prompt
// and room tokens for the answer do not fit the context of nctx tokens;
// the system prompt and the user's text are never left out. dropped
// reports whether a turn was. A prompt that cannot fit even with no
// history is ErrPromptTooLong.
func fitPrompt(m *cModel, tmpl string, ch chat, room, nctx int) (toks []int32, dropped bool, err error) {
	toks, _, dropped, err = fitPromptText(m, tmpl, ch, room, nctx)
	return toks, dropped, err
}

// fitPromptText is fitPrompt, with the prompt's text.
func fitPromptText(m *cModel, tmpl string, ch chat, room, nctx int) (toks []int32, prompt string, dropped bool, err error) {
	for {
		toks, prompt, err = promptTokensText(m, tmpl, ch)
		if err != nil {
			return nil, "", false, fmt.Errorf("llm: %w", err)
		}
		if len(toks) == 0 {
			if m.bos() < 0 {
				return nil, "", false, errors.New("llm: empty prompt and the model has no BOS token")
			}
			toks = []int32{m.bos()}
		}
		if len(toks)+room <= nctx || len(ch.turns) == 0 {
			break
		}
		ch.turns, dropped = ch.turns[1:], true
	}
	if len(toks) >= nctx {
		return nil, "", false, fmt.Errorf("llm: %w: the prompt is %d tokens, the context holds %d (llm.context_size)", ErrPromptTooLong, len(toks), nctx)
	}
	return toks, prompt, dropped, nil
}
