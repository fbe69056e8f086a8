package anonymize

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func testAnonymizer(t testing.TB, policy map[Kind]Action) *Anonymizer {
	t.Helper()
	n := loadCorpus(t).Names
	a, err := New(Options{
		Names: Names{
			People: n.People, Orgs: n.Orgs, Locations: n.Locations,
			Owner: n.Owner, Household: n.Household, Location: n.Location,
		},
		Policy: policy,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// corpus is testdata/corpus.json: one example of every kind the anonymizer
// knows, with the name lists it needs. The bridge's tests read the same file
// and assert that none of its values reaches the cloud.
type corpus struct {
	Names struct {
		People    []string `json:"people"`
		Orgs      []string `json:"orgs"`
		Locations []string `json:"locations"`
		Owner     string   `json:"owner"`
		Household []string `json:"household"`
		Location  string   `json:"location"`
	} `json:"names"`
	Examples []struct {
		Kind  Kind   `json:"kind"`
		Text  string `json:"text"`  // a sentence holding Value
		Value string `json:"value"` // the entity
	} `json:"examples"`
}

func loadCorpus(t testing.TB) corpus {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "corpus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c corpus
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("testdata/corpus.json: %v", err)
	}
	return c
}

func TestDetectCorpus(t *testing.T) {
	a := testAnonymizer(t, nil)
	for _, c := range loadCorpus(t).Examples {
		t.Run(string(c.Kind)+"/"+c.Value, func(t *testing.T) {
			spans := a.Detect(c.Text)
			var got []string
			found := false
			for _, s := range spans {
				v := c.Text[s.Start:s.End]
				got = append(got, string(s.Kind)+"="+v)
				if s.Kind == c.Kind && v == c.Value {
					found = true
				}
			}
			if !found {
				t.Errorf("Detect(%q) = %v, want %s=%q among them", c.Text, got, c.Kind, c.Value)
			}
			r := a.Anonymize(c.Text)
			if strings.Contains(r.Text, c.Value) {
				t.Errorf("Anonymize(%q) = %q still holds %q", c.Text, r.Text, c.Value)
			}
			if back := Restore(r.Text, r.Mapping); back != c.Text {
				t.Errorf("Restore(%q) = %q, want %q", r.Text, back, c.Text)
			}
		})
	}
}

func TestDetectNothing(t *testing.T) {
	a := testAnonymizer(t, nil)
	for _, text := range []string{
		"What is 2+2?",
		"turn on the kitchen light",
		"set a timer for 10 minutes at 12:30:45",
		"the release is version 1.2.3.4.5",
		"on 2024-01-15 and 15.01.2024",
		"use std::vector in C++",
		"internationalization and localization",
		"see https://example.com/docs?page=2#intro",
		"order number 1234567890123 shipped",
		"the annual report from Annabelle", // "Ann…" is no listed name
		"call me at noon, the token is",
		"Maria-Theresa is not Maria Schmidt's sister", // only the listed full name
		"fix [EMAIL_1] in the template",
		"ratios 99.5123, 10.2512 and 45.5, 300.25 (a latitude is at most 90)",
		"the snake_case_identifier_name_is_long",
		"sha: deadbeef",
	} {
		spans := a.Detect(text)
		var got []string
		for _, s := range spans {
			got = append(got, string(s.Kind)+"="+text[s.Start:s.End])
		}
		want := []string(nil)
		if strings.Contains(text, "Maria Schmidt") {
			want = []string{"person=Maria Schmidt"}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Detect(%q) = %q, want %q", text, got, want)
		}
	}
}

func TestAnonymizePlaceholders(t *testing.T) {
	a := testAnonymizer(t, nil)
	text := "Mail a@example.com and b@example.com, then a@example.com again; call +49 30 1234567."
	r := a.Anonymize(text)
	want := "Mail [EMAIL_1] and [EMAIL_2], then [EMAIL_1] again; call [PHONE_1]."
	if r.Text != want {
		t.Fatalf("Text = %q, want %q", r.Text, want)
	}
	if !reflect.DeepEqual(r.Counts, map[Kind]int{Email: 2, Phone: 1}) {
		t.Errorf("Counts = %v", r.Counts)
	}
	if !reflect.DeepEqual(r.CountsByName(), map[string]int{"email": 2, "phone": 1}) {
		t.Errorf("CountsByName = %v", r.CountsByName())
	}
	if r.Private() {
		t.Error("Private() with the default policy")
	}
	answer := "I wrote to [EMAIL_2] and [EMAIL_1]; [PHONE_1] was busy. [EMAIL_9] is unknown."
	got := Restore(answer, r.Mapping)
	if got != "I wrote to b@example.com and a@example.com; +49 30 1234567 was busy. [EMAIL_9] is unknown." {
		t.Errorf("Restore = %q", got)
	}
}

func TestAnonymizeSkipsLiteralPlaceholders(t *testing.T) {
	a := testAnonymizer(t, nil)
	text := "template [EMAIL_1] goes to x@example.com"
	r := a.Anonymize(text)
	if r.Text != "template [EMAIL_1] goes to [EMAIL_2]" {
		t.Fatalf("Text = %q", r.Text)
	}
	if Restore(r.Text, r.Mapping) != text {
		t.Fatalf("round trip failed: %q", Restore(r.Text, r.Mapping))
	}
}

func TestPolicyKeepLocal(t *testing.T) {
	a := testAnonymizer(t, map[Kind]Action{IBAN: KeepLocal, Card: KeepLocal})
	r := a.Anonymize("pay 4111 1111 1111 1111 to DE89 3704 0044 0532 0130 00, mail x@example.com")
	if !reflect.DeepEqual(r.KeepLocal, []Kind{Card, IBAN}) || !r.Private() {
		t.Errorf("KeepLocal = %v", r.KeepLocal)
	}
	if r2 := a.Anonymize("mail x@example.com"); r2.Private() {
		t.Errorf("KeepLocal = %v for a text with no keep_local kind", r2.KeepLocal)
	}
	if !a.KeepsLocal() || testAnonymizer(t, nil).KeepsLocal() {
		t.Error("KeepsLocal does not follow the policy")
	}
	if a.Action(Email) != Replace || a.Action(IBAN) != KeepLocal {
		t.Error("Action does not follow the policy")
	}
}

func TestNewRejectsBadPolicy(t *testing.T) {
	for _, p := range []map[Kind]Action{{"ssn": Replace}, {Email: "drop"}} {
		if _, err := New(Options{Policy: p}); err == nil {
			t.Errorf("New(%v) accepted", p)
		}
	}
}

func TestLuhnAndIBAN(t *testing.T) {
	for s, want := range map[string]bool{
		"4111111111111111": true, "4111111111111112": false, "490154203237518": true,
		"79927398713": true, "0": true, "": false, "abc": false,
	} {
		if Luhn(s) != want {
			t.Errorf("Luhn(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{
		"DE89370400440532013000": true, "DE89370400440532013001": false,
		"GB82WEST12345698765432": true, "NO9386011117947": true, "XX00": false,
	} {
		if ibanValid([]byte(s)) != want {
			t.Errorf("ibanValid(%q) = %v", s, !want)
		}
	}
}

func TestRestorerStreaming(t *testing.T) {
	m := Mapping{{Kind: Email, Placeholder: "[EMAIL_1]", Value: "a@example.com"}, {Kind: Person, Placeholder: "[PERSON_12]", Value: "Jonas"}}
	answer := "Hi [PERSON_12], I wrote to [EMAIL_1] [not a placeholder] and [EMAIL_3] [EMAIL_"
	want := Restore(answer, m)
	// Every way to cut the answer in two, and one byte at a time.
	for cut := 0; cut <= len(answer); cut++ {
		r := NewRestorer(m)
		got := r.Write(answer[:cut]) + r.Write(answer[cut:]) + r.Flush()
		if got != want {
			t.Fatalf("cut at %d: %q, want %q", cut, got, want)
		}
	}
	r := NewRestorer(m)
	var b strings.Builder
	for i := 0; i < len(answer); i++ {
		b.WriteString(r.Write(answer[i : i+1]))
	}
	b.WriteString(r.Flush())
	if b.String() != want {
		t.Fatalf("byte by byte: %q, want %q", b.String(), want)
	}
}

func TestParseKind(t *testing.T) {
	for _, k := range Kinds() {
		if got, ok := ParseKind(strings.ToUpper(string(k))); !ok || got != k {
			t.Errorf("ParseKind(%q) = %q, %v", k, got, ok)
		}
	}
	if _, ok := ParseKind("ssn"); ok {
		t.Error("ParseKind(ssn) ok")
	}
}

func TestNamesCaseAndSpace(t *testing.T) {
	a := testAnonymizer(t, nil)
	for text, want := range map[string]string{
		"ask ZOË now":                "ZOË",
		"MARIA\tSCHMIDT called":      "MARIA\tSCHMIDT",
		"maria\n schmidt called":     "maria\n schmidt",
		"Lena, Jonas and Lena again": "Lena",
		"ada lovelace":               "ada lovelace",
		"Jonas's bike":               "Jonas",
	} {
		spans := a.Detect(text)
		if len(spans) == 0 || text[spans[0].Start:spans[0].End] != want || spans[0].Kind != Person {
			t.Errorf("Detect(%q) = %v, want person %q first", text, spans, want)
		}
	}
	for _, text := range []string{"Jonasson", "xLena", "Maria Schmidtke", "adalovelace"} {
		if spans := a.Detect(text); len(spans) != 0 {
			t.Errorf("Detect(%q) = %v, want nothing", text, spans)
		}
	}
}
