// Package anonymize finds personal and secret data in a text and replaces
// each value with a typed, numbered placeholder ([EMAIL_1], [PHONE_2], …),
// so that the text can leave the device; the mapping from placeholders back
// to values stays on the device, and Restore puts the values back into the
// cloud's answer.
//
// Everything here is a pure function of its inputs: an Anonymizer holds only
// the compiled, immutable name lists and policy, and is safe for concurrent
// use. Detection is deliberately eager: a false positive costs a placeholder
// that is restored afterwards, a false negative costs a leak.
package anonymize

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Kind is the type of a detected entity. Its upper-case form names the
// placeholders ([EMAIL_1]); its lower-case form is the key of the entity
// counts in replies and the key of the per-kind policy in the config.
type Kind string

// The kinds of entities the anonymizer detects.
const (
	Email    Kind = "email"    // e-mail addresses
	Phone    Kind = "phone"    // phone numbers, international and common national formats
	IP       Kind = "ip"       // IPv4 and IPv6 addresses
	MAC      Kind = "mac"      // MAC addresses (colon, dash and dotted forms)
	URL      Kind = "url"      // URLs carrying credentials or tokens
	Card     Kind = "card"     // payment card numbers (known issuer prefix and Luhn)
	IBAN     Kind = "iban"     // IBANs (country length and mod-97 checksum)
	IMEI     Kind = "imei"     // IMEIs (15 digits, Luhn)
	Serial   Kind = "serial"   // serial numbers introduced by "serial", "S/N", "SN"
	GPS      Kind = "gps"      // coordinates, decimal or degrees/minutes/seconds
	Secret   Kind = "secret"   // API keys and tokens: known prefixes, assigned passwords, high-entropy strings
	Person   Kind = "person"   // names from the people lists, the device owner and household
	Org      Kind = "org"      // names from the organizations list
	Location Kind = "location" // names from the locations list and the device's location
)

// Kinds lists every kind, in the order of the entity table in docs/cloud.md.
func Kinds() []Kind {
	return []Kind{Email, Phone, IP, MAC, URL, Card, IBAN, IMEI, Serial, GPS, Secret, Person, Org, Location}
}

// ParseKind returns the kind named s (case-insensitive); ok is false for an
// unknown name.
func ParseKind(s string) (k Kind, ok bool) {
	k = Kind(strings.ToLower(s))
	return k, slices.Contains(Kinds(), k)
}

// Action is what the policy does with a detected kind.
type Action string

// The policy actions.
const (
	// Replace swaps the value for a placeholder; the text may go to the cloud.
	Replace Action = "replace"
	// KeepLocal keeps the whole query on the device: a text holding such a
	// value is answered locally and never escalated.
	KeepLocal Action = "keep_local"
)

// Names are the configured name lists, matched as whole words, case
// insensitively. Owner and Household are people; Location is the device's
// own place (a town, a street, a house name).
type Names struct {
	People    []string
	Orgs      []string
	Locations []string
	Owner     string
	Household []string
	Location  string
}

// Options configures an Anonymizer.
type Options struct {
	Names Names
	// Policy maps a kind to its action; a kind not in the map is replaced.
	Policy map[Kind]Action
	// MinEntropy is the Shannon entropy in bits per character above which
	// a long mixed token counts as a secret; 0 means DefaultMinEntropy.
	MinEntropy float64
}

// DefaultMinEntropy suits base64/base62 keys of 20+ characters, which
// typically score 4.2–5.5 bits per character, while ordinary long words and
// identifiers score below 3.5.
const DefaultMinEntropy = 3.5

// Anonymizer detects and replaces entities. It is immutable and safe for
// concurrent use.
type Anonymizer struct {
	policy     map[Kind]Action
	minEntropy float64
	names      []*nameList
}

// New compiles the name lists and checks the policy.
func New(o Options) (*Anonymizer, error) {
	a := &Anonymizer{policy: map[Kind]Action{}, minEntropy: o.MinEntropy}
	if a.minEntropy <= 0 {
		a.minEntropy = DefaultMinEntropy
	}
	for k, act := range o.Policy {
		if _, ok := ParseKind(string(k)); !ok {
			return nil, fmt.Errorf("anonymizer policy: unknown entity kind %q", k)
		}
		if act != Replace && act != KeepLocal {
			return nil, fmt.Errorf("anonymizer policy: %s: action %q is not replace or keep_local", k, act)
		}
		a.policy[k] = act
	}
	people := append(append([]string{o.Names.Owner}, o.Names.Household...), o.Names.People...)
	locations := append([]string{o.Names.Location}, o.Names.Locations...)
	for _, l := range []struct {
		kind  Kind
		names []string
	}{{Person, people}, {Org, o.Names.Orgs}, {Location, locations}} {
		if nl := compileNames(l.kind, l.names); nl != nil {
			a.names = append(a.names, nl)
		}
	}
	return a, nil
}

// KeepsLocal reports whether the policy keeps any kind on the device; when
// it does not, no text is ever private.
func (a *Anonymizer) KeepsLocal() bool {
	for _, act := range a.policy {
		if act == KeepLocal {
			return true
		}
	}
	return false
}

// Action returns the policy's action for k.
func (a *Anonymizer) Action(k Kind) Action {
	if act, ok := a.policy[k]; ok {
		return act
	}
	return Replace
}

// Entity is one replaced value and its placeholder.
type Entity struct {
	Kind        Kind   `json:"kind"`
	Placeholder string `json:"placeholder"`
	Value       string `json:"value"`
}

// Mapping holds the replaced values of one text. It never leaves the
// device: it is what Restore needs to undo the replacement.
type Mapping []Entity

// Result is the outcome of anonymizing one text.
type Result struct {
	// Text is the input with every detected value replaced.
	Text string
	// Mapping restores Text (and answers that quote its placeholders).
	Mapping Mapping
	// Counts is the number of distinct values replaced, by kind.
	Counts map[Kind]int
	// KeepLocal lists the detected kinds whose policy is keep_local, in
	// the order of Kinds(); when it is not empty the text must not leave
	// the device.
	KeepLocal []Kind
}

// Private reports whether the text holds a value that must stay on the device.
func (r Result) Private() bool { return len(r.KeepLocal) > 0 }

// CountsByName returns Counts with string keys, the shape of
// agent.Answer.Entities; nil when nothing was replaced.
func (r Result) CountsByName() map[string]int {
	if len(r.Counts) == 0 {
		return nil
	}
	m := make(map[string]int, len(r.Counts))
	for k, n := range r.Counts {
		m[string(k)] = n
	}
	return m
}

// Anonymize replaces every detected value of text with a placeholder. Equal
// values share one placeholder. Placeholders are numbered per kind from 1
// in order of appearance, skipping any number whose placeholder already
// occurs literally in text, so Restore(r.Text, r.Mapping) == text always.
func (a *Anonymizer) Anonymize(text string) Result {
	_, r := a.AnonymizeAll([]string{text})
	return r
}

// AnonymizeAll anonymizes texts as one document, such as the turns of a
// conversation: a value has one placeholder in all of them, numbered in
// order of appearance across them, so the same conversation anonymized
// again with one more turn keeps its earlier turns' placeholders. out
// holds each text anonymized; r.Text is the last one's, and r.Mapping
// restores every one of them.
func (a *Anonymizer) AnonymizeAll(texts []string) (out []string, r Result) {
	p := newPass(texts)
	out = make([]string, len(texts))
	for i, text := range texts {
		out[i] = p.replace(a, text)
	}
	r = Result{Mapping: p.mapping, Counts: p.counts}
	if len(out) > 0 {
		r.Text = out[len(out)-1]
	}
	for _, k := range Kinds() {
		if p.keep[k] {
			r.KeepLocal = append(r.KeepLocal, k)
		}
	}
	return out, r
}

// pass is the state of one anonymization over one or more texts.
type pass struct {
	next    map[Kind]int
	byValue map[string]string // kind + "\x00" + value → placeholder
	// taken holds the placeholders the texts already hold literally,
	// which are never handed out.
	taken   map[string]bool
	keep    map[Kind]bool
	mapping Mapping
	counts  map[Kind]int
}

func newPass(texts []string) *pass {
	p := &pass{next: map[Kind]int{}, byValue: map[string]string{}, taken: map[string]bool{}, keep: map[Kind]bool{}, counts: map[Kind]int{}}
	for _, text := range texts {
		for _, ph := range placeholderRe.FindAllString(text, -1) {
			p.taken[ph] = true
		}
	}
	return p
}

// replace returns text with each detected value replaced.
func (p *pass) replace(a *Anonymizer, text string) string {
	spans := a.Detect(text)
	if len(spans) == 0 {
		return text
	}
	var b strings.Builder
	b.Grow(len(text))
	last := 0
	for _, s := range spans {
		if a.Action(s.Kind) == KeepLocal {
			p.keep[s.Kind] = true
		}
		b.WriteString(text[last:s.Start])
		b.WriteString(p.placeholder(s.Kind, text[s.Start:s.End]))
		last = s.End
	}
	b.WriteString(text[last:])
	return b.String()
}

// placeholder returns value's placeholder, handing out the next free one
// of its kind the first time the value is seen.
func (p *pass) placeholder(k Kind, value string) string {
	id := string(k) + "\x00" + value
	if ph, ok := p.byValue[id]; ok {
		return ph
	}
	var ph string
	for {
		p.next[k]++
		ph = Placeholder(k, p.next[k])
		if !p.taken[ph] {
			break
		}
	}
	p.byValue[id] = ph
	p.mapping = append(p.mapping, Entity{Kind: k, Placeholder: ph, Value: value})
	p.counts[k]++
	return ph
}

// Placeholder returns the placeholder of the n-th value of kind k.
func Placeholder(k Kind, n int) string {
	return "[" + strings.ToUpper(string(k)) + "_" + strconv.Itoa(n) + "]"
}

// placeholderRe matches anything shaped like a placeholder. Kinds are
// letters only, so a placeholder holds no bracket inside: two placeholders
// can never overlap, which keeps Restore a single left-to-right pass.
var placeholderRe = regexp.MustCompile(`\[[A-Z]+_[0-9]+\]`)

// Restore puts the values of m back in place of their placeholders in text,
// in one pass (a restored value is never scanned again). Placeholder-shaped
// text that m does not know is left as it is.
func Restore(text string, m Mapping) string {
	if len(m) == 0 {
		return text
	}
	values := make(map[string]string, len(m))
	for _, e := range m {
		values[e.Placeholder] = e.Value
	}
	return placeholderRe.ReplaceAllStringFunc(text, func(ph string) string {
		if v, ok := values[ph]; ok {
			return v
		}
		return ph
	})
}

// maxPlaceholder is the longest placeholder Restorer holds back while it
// waits for the rest: "[LOCATION_" and up to 9 digits and "]".
const maxPlaceholder = 1 + len("LOCATION_") + 9 + 1

// Restorer restores a streamed answer piece by piece: a placeholder split
// across pieces ("[EM", "AIL_1]") is held back until it is complete. It is
// not safe for concurrent use.
type Restorer struct {
	m       Mapping
	pending strings.Builder
}

// NewRestorer returns a Restorer for m.
func NewRestorer(m Mapping) *Restorer { return &Restorer{m: m} }

// Write takes the next piece and returns the restored text that is safe to
// emit now (possibly "").
func (r *Restorer) Write(piece string) string {
	r.pending.WriteString(piece)
	s := r.pending.String()
	cut := len(s)
	// Hold back from the last '[' if what follows could still become a
	// placeholder.
	if i := strings.LastIndexByte(s, '['); i >= 0 && couldBePlaceholder(s[i:]) {
		cut = i
	}
	r.pending.Reset()
	r.pending.WriteString(s[cut:])
	return Restore(s[:cut], r.m)
}

// Flush returns whatever is held back, restored.
func (r *Restorer) Flush() string {
	s := r.pending.String()
	r.pending.Reset()
	return Restore(s, r.m)
}

// couldBePlaceholder reports whether s (starting with '[') is an incomplete
// prefix of a placeholder.
func couldBePlaceholder(s string) bool {
	if len(s) >= maxPlaceholder {
		return false
	}
	i := 1
	for i < len(s) && s[i] >= 'A' && s[i] <= 'Z' {
		i++
	}
	if i == len(s) {
		return true
	}
	if s[i] != '_' || i == 1 {
		return false
	}
	i++
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i == len(s)
}
