package anonymize

import (
	"math"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Span is one detected entity: text[Start:End] is of kind Kind.
type Span struct {
	Kind       Kind
	Start, End int
}

// Detect returns the entities of text, sorted by position and never
// overlapping. Where candidates overlap, the more specific detector wins
// (a URL with credentials over the e-mail inside it, a checksummed card
// over a phone-shaped run of digits), then the longer match.
func (a *Anonymizer) Detect(text string) []Span {
	var cands []cand
	for _, d := range detectors {
		if d.need != nil && !d.need(text) {
			continue
		}
		if d.retry {
			cands = append(cands, retrySearch(d, text)...)
			continue
		}
		for _, m := range d.re.FindAllStringSubmatchIndex(text, -1) {
			start, end := m[0], m[1]
			if len(m) >= 4 && m[2] >= 0 {
				// The detector marks the value with its first group
				// (the keyword before it stays in the text).
				start, end = m[2], m[3]
			}
			if d.bounded && !wordBounded(text, start, end) {
				continue
			}
			k, s, e, ok := d.check(text, start, end)
			if ok {
				cands = append(cands, cand{Span{k, s, e}, d.rank})
			}
		}
	}
	if len(a.names) > 0 {
		folded := foldASCII(text)
		for _, l := range a.names {
			for _, m := range l.find(text, folded) {
				cands = append(cands, cand{Span{l.kind, m[0], m[1]}, rankName})
			}
		}
	}
	for _, s := range entropyTokens(text, a.minEntropy) {
		cands = append(cands, cand{s, rankEntropy})
	}
	return resolve(cands)
}

// retrySearch runs a retry detector over text.
func retrySearch(d detector, text string) []cand {
	var out []cand
	for pos := 0; pos < len(text); {
		m := d.re.FindStringIndex(text[pos:])
		if m == nil {
			break
		}
		start, end := pos+m[0], pos+m[1]
		if k, s, e, ok := d.check(text, start, end); ok {
			out = append(out, cand{Span{k, s, e}, d.rank})
			pos = e
			continue
		}
		// Go on from the next character that may start a value: retry
		// detectors want no letter or digit before their value.
		_, w := utf8.DecodeRuneInString(text[start:])
		pos = start + w
		for pos < len(text) && !boundedBefore(text, pos) {
			_, w := utf8.DecodeRuneInString(text[pos:])
			pos += w
		}
	}
	return out
}

type cand struct {
	Span
	rank int
}

// resolve keeps the best candidates that do not overlap: by rank, then
// length, then position. The kept spans stay sorted by start, so each
// overlap test is a binary search: texts with thousands of candidates
// resolve in n log n.
func resolve(cands []cand) []Span {
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		if la, lb := a.End-a.Start, b.End-b.Start; la != lb {
			return la > lb
		}
		return a.Start < b.Start
	})
	var out []Span // sorted by Start, never overlapping
	for _, c := range cands {
		if c.End <= c.Start {
			continue
		}
		// i is the first kept span that starts at or after c.Start.
		i := sort.Search(len(out), func(i int) bool { return out[i].Start >= c.Start })
		if i < len(out) && out[i].Start < c.End {
			continue // overlaps the next span
		}
		if i > 0 && out[i-1].End > c.Start {
			continue // overlaps the previous span
		}
		out = slices.Insert(out, i, c.Span)
	}
	return out
}

// Ranks order overlapping candidates: lower wins.
const (
	rankKey = iota // secrets with a known prefix, private key blocks
	rankURL
	rankEmail
	rankIBAN
	rankDigits // card, IMEI
	rankSerial
	rankMAC
	rankIP
	rankGPS
	rankPhone
	rankAssigned // "password: …"
	rankName
	rankEntropy
)

type detector struct {
	re   *regexp.Regexp
	rank int
	// bounded: the match must not be glued to a letter or digit on
	// either side.
	bounded bool
	// retry: the match is greedy and check may shorten it (and checks the
	// word boundaries itself); when check rejects it, the search goes on
	// from the next character rather than after the match, so a value the
	// greedy match swallowed is still found. Such patterns use no \b,
	// which would misread a search that starts inside a word.
	retry bool
	// check validates a match and may narrow it or change its kind.
	check func(text string, start, end int) (k Kind, s, e int, ok bool)
	// need, when set, is a cheap test that text may hold a match at all;
	// it spares most texts the regexp.
	need func(text string) bool
}

func contains(subs ...string) func(string) bool {
	return func(text string) bool {
		for _, s := range subs {
			if strings.Contains(text, s) {
				return true
			}
		}
		return false
	}
}

// containsFold is contains for lower-case needles, ignoring ASCII case.
func containsFold(subs ...string) func(string) bool {
	return func(text string) bool {
		lower := strings.ToLower(text)
		for _, s := range subs {
			if strings.Contains(lower, s) {
				return true
			}
		}
		return false
	}
}

func keyPattern(re string) detector {
	return detector{re: regexp.MustCompile(re), rank: rankKey, bounded: true, check: accept(Secret)}
}

func accept(k Kind) func(string, int, int) (Kind, int, int, bool) {
	return func(_ string, s, e int) (Kind, int, int, bool) { return k, s, e, true }
}

var detectors = []detector{
	// Secrets with a well-known shape: OpenAI, GitHub, GitLab, AWS, Slack,
	// Google, Stripe, Hugging Face, npm, JWTs and PEM private keys. One
	// pattern per literal prefix: regexp then skips ahead with a string
	// search instead of trying every position.
	keyPattern(`sk-(?:proj-|ant-|live-)?[A-Za-z0-9_-]{20,}`),
	keyPattern(`gh[pousr]_[A-Za-z0-9]{30,}`),
	keyPattern(`github_pat_[A-Za-z0-9_]{22,}`),
	keyPattern(`glpat-[A-Za-z0-9_-]{20,}`),
	keyPattern(`AKIA[0-9A-Z]{16}`),
	keyPattern(`ASIA[0-9A-Z]{16}`),
	keyPattern(`xox[abprs]-[A-Za-z0-9-]{10,}`),
	keyPattern(`AIza[0-9A-Za-z_-]{35}`),
	keyPattern(`sk_(?:live|test)_[A-Za-z0-9]{16,}`),
	keyPattern(`pk_(?:live|test)_[A-Za-z0-9]{16,}`),
	keyPattern(`rk_(?:live|test)_[A-Za-z0-9]{16,}`),
	keyPattern(`hf_[A-Za-z0-9]{30,}`),
	keyPattern(`npm_[A-Za-z0-9]{36}`),
	keyPattern(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`),
	{re: regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)`),
		rank: rankKey, check: accept(Secret), need: contains("-----BEGIN")},
	// URLs: only those carrying user info or a token-like query parameter
	// are replaced; a plain link is not personal.
	{re: regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]{1,15}://[^\s<>"'\x60]+`), rank: rankURL, check: checkURL, need: contains("://")},
	{re: regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`),
		rank: rankEmail, bounded: true, check: accept(Email), need: contains("@")},
	// IBAN: country, check digits, then 11–30 letters or digits, in groups
	// of four or unbroken.
	{re: regexp.MustCompile(`[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}`), rank: rankIBAN, retry: true, check: checkIBAN},
	// Runs of 13–19 digits, optionally grouped by spaces or dashes: cards
	// and IMEIs, told apart by issuer prefix and length, Luhn for both.
	{re: regexp.MustCompile(`[0-9](?:[ -]?[0-9]){12,18}`), rank: rankDigits, retry: true, check: checkDigits},
	{re: regexp.MustCompile(`(?i)\b(?:serial(?:\s*(?:no\.?|number|#))?|s/n|sn)\s*[:#=]?\s*([A-Z0-9][A-Z0-9-]{4,}[A-Z0-9])`),
		rank: rankSerial, bounded: true, check: checkSerial, need: containsFold("serial", "s/n", "sn")},
	{re: regexp.MustCompile(`(?i)[0-9a-f]{2}(?::[0-9a-f]{2}){5}|[0-9a-f]{2}(?:-[0-9a-f]{2}){5}|[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}`),
		rank: rankMAC, bounded: true, check: accept(MAC), need: contains(":", "-", ".")},
	{re: regexp.MustCompile(`[0-9]{1,3}(?:\.[0-9]{1,3}){3}`), rank: rankIP, bounded: true, check: checkIPv4, need: contains(".")},
	{re: regexp.MustCompile(`(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?:%[0-9a-z]+)?`), rank: rankIP, check: checkIPv6, need: contains(":")},
	// Coordinates: "48.8584, 2.2945", "48.8584° N, 2.2945° E" and
	// 48°51'29.6"N 2°17'40.2"E.
	{re: regexp.MustCompile(`[-+]?[0-9]{1,2}\.[0-9]{3,}\s*,\s*[-+]?[0-9]{1,3}\.[0-9]{3,}`), rank: rankGPS, bounded: true, check: checkLatLon, need: contains(",")},
	{re: regexp.MustCompile(`[0-9]{1,2}(?:\.[0-9]+)?\s*°\s*[NS]\s*,?\s*[0-9]{1,3}(?:\.[0-9]+)?\s*°\s*[EW]`), rank: rankGPS, check: accept(GPS), need: contains("°")},
	{re: regexp.MustCompile(`[0-9]{1,3}\s*°\s*[0-9]{1,2}\s*['′]\s*(?:[0-9]{1,2}(?:\.[0-9]+)?\s*["″]\s*)?[NSEW]\s*,?\s*[0-9]{1,3}\s*°\s*[0-9]{1,2}\s*['′]\s*(?:[0-9]{1,2}(?:\.[0-9]+)?\s*["″]\s*)?[NSEW]`),
		rank: rankGPS, check: accept(GPS), need: contains("°")},
	// Phones: "+" or "00" and a country code, NANP (555) 123-4567,
	// and national numbers with a trunk 0 (030 1234567).
	{re: regexp.MustCompile(`(?:\+|\b00)[1-9][0-9 ().\-/]{5,22}[0-9]`), rank: rankPhone, check: checkPhone, need: contains("+", "00")},
	{re: regexp.MustCompile(`(?:\([0-9]{3}\)\s?|\b[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}`), rank: rankPhone, bounded: true, check: checkPhone},
	{re: regexp.MustCompile(`\b0[1-9][0-9]{1,4}[ /-]?[0-9]{3,4}[ -]?[0-9]{2,5}`), rank: rankPhone, bounded: true, check: checkPhone},
	// An assigned secret: "password: hunter2", "api key = …", "PIN is 1234".
	{re: regexp.MustCompile(`(?i)\b(?:password|passwd|pwd|passphrase|passcode|pin|secret|token|api[_ -]?key|access[_ -]?key)\s*(?:is|:|=)\s*([^\s"'\x60,;]{4,})`),
		rank: rankAssigned, check: checkAssigned,
		need: containsFold("pass", "pwd", "pin", "secret", "token", "key")},
}

// wordBounded reports whether text[s:e] is not glued to a letter or digit.
func wordBounded(text string, s, e int) bool { return boundedBefore(text, s) && boundedAfter(text, e) }

// boundedBefore reports whether no letter or digit precedes offset s.
func boundedBefore(text string, s int) bool {
	if s == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(text[:s])
	return !isWordRune(r)
}

// boundedAfter reports whether no letter or digit follows offset e.
func boundedAfter(text string, e int) bool {
	if e >= len(text) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(text[e:])
	return !isWordRune(r)
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }

// tokenQueryKeys are query parameter names whose values are credentials.
var tokenQueryKeys = regexp.MustCompile(`(?i)(?:^|[?&;])(?:[a-z0-9_-]*(?:token|secret|passw(?:or)?d|pwd|api_?key|apikey|key|auth|sig|signature|session|sid|code|credential)[a-z0-9_-]*)=[^&;#]+`)

func checkURL(text string, s, e int) (Kind, int, int, bool) {
	// Trailing punctuation belongs to the sentence, not the URL.
	for e > s && strings.ContainsRune(".,;:!?)]}", rune(text[e-1])) {
		e--
	}
	u := text[s:e]
	rest := u[strings.Index(u, "://")+3:]
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	if strings.Contains(authority, "@") {
		return URL, s, e, true
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 && tokenQueryKeys.MatchString(rest[i:]) {
		return URL, s, e, true
	}
	return "", 0, 0, false
}

// ibanLengths is the IBAN length of each country that uses one.
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
	"BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
	"ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
	"HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
	"LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
	"MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
	"RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
	"TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

// checkIBAN finds the longest prefix of the match that is a valid IBAN: the
// match may have swallowed a following upper-case word.
func checkIBAN(text string, s, e int) (Kind, int, int, bool) {
	if !boundedBefore(text, s) {
		return "", 0, 0, false
	}
	want := ibanLengths[text[s:s+2]]
	var compact []byte
	var ends []int // ends[i]: end offset in text after i+1 compact chars
	for i := s; i < e; i++ {
		if c := text[i]; c != ' ' {
			compact = append(compact, c)
			ends = append(ends, i+1)
		}
	}
	for n := len(compact); n >= 15; n-- {
		if want != 0 && n != want {
			continue
		}
		if !boundedAfter(text, ends[n-1]) {
			continue
		}
		if ibanValid(compact[:n]) {
			return IBAN, s, ends[n-1], true
		}
	}
	return "", 0, 0, false
}

// ibanValid checks the ISO 13616 mod-97 checksum of a compact IBAN.
func ibanValid(b []byte) bool {
	if len(b) < 15 || len(b) > 34 {
		return false
	}
	rearranged := append(append([]byte{}, b[4:]...), b[:4]...)
	rem := 0
	for _, c := range rearranged {
		switch {
		case c >= '0' && c <= '9':
			rem = (rem*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			rem = (rem*100 + int(c-'A'+10)) % 97
		default:
			return false
		}
	}
	return rem == 1
}

// Luhn reports whether the digits of s pass the Luhn checksum; other
// characters are ignored. A string without digits fails.
func Luhn(s string) bool {
	sum, n := 0, 0
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if c < '0' || c > '9' {
			continue
		}
		d := int(c - '0')
		if n%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		n++
	}
	return n > 0 && sum%10 == 0
}

func digitsOf(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// cardIssuer reports whether a card number of this length starts with a
// known issuer prefix (Visa, Mastercard, Amex, Discover, JCB, Diners,
// UnionPay, Maestro).
func cardIssuer(d string) bool {
	n := len(d)
	p2 := d[:2]
	switch {
	case d[0] == '4':
		return n == 13 || n == 16 || n == 19
	case p2 >= "51" && p2 <= "55", d[:4] >= "2221" && d[:4] <= "2720":
		return n == 16
	case p2 == "34" || p2 == "37":
		return n == 15
	case strings.HasPrefix(d, "6011"), p2 == "65", d[:3] >= "644" && d[:3] <= "649":
		return n >= 16
	case p2 == "35":
		return n >= 16
	case p2 == "36" || p2 == "38" || p2 == "39" || d[:3] >= "300" && d[:3] <= "305":
		return n >= 14
	case p2 == "62":
		return n >= 16
	case p2 == "50" || p2 >= "56" && p2 <= "69":
		return n >= 12 // Maestro
	}
	return false
}

// checkDigits tries the whole run, then shorter runs ending at a group
// separator: "4111 1111 1111 1111 12" is a card followed by a number.
func checkDigits(text string, s, e int) (Kind, int, int, bool) {
	if !boundedBefore(text, s) {
		return "", 0, 0, false
	}
	for end := e; end > s; {
		d := digitsOf(text[s:end])
		if len(d) < 13 {
			break
		}
		if Luhn(d) && boundedAfter(text, end) {
			if cardIssuer(d) {
				return Card, s, end, true
			}
			if len(d) == 15 {
				return IMEI, s, end, true
			}
		}
		i := strings.LastIndexAny(text[s:end], " -")
		if i < 0 {
			break
		}
		end = s + i
	}
	return "", 0, 0, false
}

func checkSerial(text string, s, e int) (Kind, int, int, bool) {
	// A serial has a digit: "SN: something" in prose is not one.
	if !strings.ContainsAny(text[s:e], "0123456789") {
		return "", 0, 0, false
	}
	return Serial, s, e, true
}

func checkIPv4(text string, s, e int) (Kind, int, int, bool) {
	// A version number "1.2.3.4.5" is not an address.
	if s > 0 && text[s-1] == '.' || e < len(text) && text[e] == '.' && e+1 < len(text) && text[e+1] >= '0' && text[e+1] <= '9' {
		return "", 0, 0, false
	}
	a, err := netip.ParseAddr(text[s:e])
	if err != nil || !a.Is4() {
		return "", 0, 0, false
	}
	return IP, s, e, true
}

func checkIPv6(text string, s, e int) (Kind, int, int, bool) {
	// Trim a sentence colon and check the neighbours by hand: the regexp
	// may start or end inside a longer run of hex letters and colons.
	for e > s && text[e-1] == ':' && !strings.HasSuffix(text[s:e], "::") {
		e--
	}
	if !wordBounded(text, s, e) || s > 0 && text[s-1] == ':' || e < len(text) && text[e] == ':' {
		return "", 0, 0, false
	}
	v := text[s:e]
	if strings.Count(v, ":") < 2 || !strings.ContainsAny(v, "0123456789abcdefABCDEF") {
		return "", 0, 0, false
	}
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is6() {
		return "", 0, 0, false
	}
	return IP, s, e, true
}

func checkLatLon(text string, s, e int) (Kind, int, int, bool) {
	v := strings.Split(text[s:e], ",")
	lat, ok1 := parseFloat(strings.TrimSpace(v[0]))
	lon, ok2 := parseFloat(strings.TrimSpace(v[1]))
	if !ok1 || !ok2 || math.Abs(lat) > 90 || math.Abs(lon) > 180 {
		return "", 0, 0, false
	}
	return GPS, s, e, true
}

func parseFloat(s string) (float64, bool) {
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	v, frac, div := 0.0, false, 1.0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.' && !frac:
			frac = true
		case c >= '0' && c <= '9':
			if frac {
				div *= 10
				v += float64(c-'0') / div
			} else {
				v = v*10 + float64(c-'0')
			}
		default:
			return 0, false
		}
	}
	if neg {
		v = -v
	}
	return v, true
}

func checkPhone(text string, s, e int) (Kind, int, int, bool) {
	// A closing bracket at the end belongs to the sentence unless the
	// number opened one.
	for e > s && (text[e-1] == ')' && strings.Count(text[s:e], "(") < strings.Count(text[s:e], ")") || text[e-1] == ' ' || text[e-1] == '-' || text[e-1] == '.') {
		e--
	}
	n := len(digitsOf(text[s:e]))
	if n < 7 || n > 15 {
		return "", 0, 0, false
	}
	if e < len(text) && isWordRune(rune(text[e])) {
		return "", 0, 0, false
	}
	return Phone, s, e, true
}

func checkAssigned(text string, s, e int) (Kind, int, int, bool) {
	// Trailing sentence punctuation is not part of the password.
	for e > s && strings.ContainsRune(".!?)", rune(text[e-1])) {
		e--
	}
	if e-s < 4 {
		return "", 0, 0, false
	}
	return Secret, s, e, true
}

// tokenRe finds candidate tokens for the entropy test: long runs of the
// characters of base64, base64url, hex and base62 keys.
var tokenRe = regexp.MustCompile(`[A-Za-z0-9_\-+/=]{20,}`)

// entropyTokens returns the long tokens that look random: letters mixed
// with digits and a Shannon entropy of at least min bits per character
// (hex tokens, whose alphabet caps entropy at 4 bits, need 32+ characters
// and 3 bits).
func entropyTokens(text string, min float64) []Span {
	var out []Span
	for _, m := range tokenRe.FindAllStringIndex(text, -1) {
		s, e := m[0], m[1]
		// Leading and trailing separators belong to the sentence.
		for s < e && strings.ContainsRune("-_+/=", rune(text[s])) {
			s++
		}
		for e > s && strings.ContainsRune("-_+/", rune(text[e-1])) {
			e--
		}
		if e-s < 20 || !wordBounded(text, s, e) {
			continue
		}
		tok := text[s:e]
		if !strings.ContainsAny(tok, "0123456789") || strings.IndexFunc(tok, unicode.IsLetter) < 0 {
			continue
		}
		h := entropy(tok)
		if h >= min || isHex(tok) && len(tok) >= 32 && h >= 3 {
			out = append(out, Span{Secret, s, e})
		}
	}
	return out
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// entropy is the Shannon entropy of s's bytes in bits per byte.
func entropy(s string) float64 {
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	h, n := 0.0, float64(len(s))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
