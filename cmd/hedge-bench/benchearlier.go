package main

// A run of some of the benchmarks (BENCH=mqtt) writes a report that keeps
// the other sections as an earlier report (the committed BENCHMARKS.md)
// shows them: their text, plots and summary figures, marked as of that
// run. Nothing is measured or typed for them; they are copied.

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// earlierReport is what an earlier report shows, section by section.
type earlierReport struct {
	// run, commit and machine are the values of its run table's rows.
	run, commit, machine string
	sections             map[string]earlierSection // by title
}

// carriedLine is the note above a section carried from an earlier run.
func (s earlierSection) carriedLine() string {
	on := ""
	if s.machine != "" {
		on = ", on " + s.machine
	}
	return fmt.Sprintf("%s%s, commit %s%s): this run did not run it.", carriedNote, s.run, s.commit, on)
}

// earlierSection is one section of an earlier report.
type earlierSection struct {
	// run, commit and machine say which run measured it, on what: the
	// report's, or, for a section that report itself carried over, the
	// run it named.
	run, commit, machine string
	// body is its Markdown under the heading, without the carried-over
	// note and the headlines comment.
	body   string
	heads  []headline
	images []string // file names of the plots it links
}

// section returns the section titled title when the earlier report holds
// its results (not a "not run" or failure note).
func (e earlierReport) section(title string) (earlierSection, bool) {
	s, ok := e.sections[title]
	if !ok {
		return earlierSection{}, false
	}
	for _, note := range []string{"Not run in this run.", "**Failed**", "**Its results could not be read**"} {
		if strings.HasPrefix(s.body, note) {
			return earlierSection{}, false
		}
	}
	return s, true
}

// The marks a report leaves for a later one: the note above a carried
// section, and the comment that closes each section with its summary
// figures.
const (
	carriedNote   = "*From an earlier run* ("
	headlinesOpen = "<!-- headlines of this section, for the summary of a later report that does not run it:"
	headlinesEnd  = "-->"
)

// headlinesComment is the comment that keeps heads for a later report.
func headlinesComment(heads []headline) string {
	if len(heads) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(headlinesOpen + "\n")
	b.WriteString(headlineTable(heads))
	b.WriteString(headlinesEnd + "\n\n")
	return b.String()
}

// earlier marks heads as figures of an earlier run, for the summary.
func earlier(heads []headline) []headline {
	out := make([]headline, len(heads))
	for i, h := range heads {
		h.Figure += " (earlier run)"
		out[i] = h
	}
	return out
}

// parseEarlierReport reads a report written by hedge-bench report. A
// report from before the headlines comments gives each section the
// figures of its targets table only.
func parseEarlierReport(doc string) earlierReport {
	// Compiled here, not in package variables: every hedge command would
	// compile them at start.
	carriedRe := regexp.MustCompile(`^\*From an earlier run\* \((.*), commit (.*?)(?:, on (.*))?\): this run did not run it\.$`)
	imageRe := regexp.MustCompile(`!\[[^\]]*\]\(([^)]+\.png)\)`)
	e := earlierReport{sections: map[string]earlierSection{}}
	var title string
	var body []string
	flush := func() {
		if title != "" {
			e.sections[title] = parseEarlierSection(strings.Join(body, "\n"), e, carriedRe, imageRe)
		}
	}
	for _, line := range strings.Split(doc, "\n") {
		if t, ok := strings.CutPrefix(line, "## "); ok {
			flush()
			title, body = t, nil
			continue
		}
		if title == "" {
			if v, ok := tableValue(line, "run"); ok {
				e.run = v
			} else if v, ok := tableValue(line, "commit"); ok {
				e.commit = v
			} else if v, ok := tableValue(line, "machine"); ok {
				e.machine = v
			}
			continue
		}
		body = append(body, line)
	}
	flush()
	return e
}

// tableValue is the value of a two-column table row "| key | value |".
func tableValue(line, key string) (string, bool) {
	v, ok := strings.CutPrefix(line, "| "+key+" | ")
	if !ok {
		return "", false
	}
	return strings.TrimSuffix(v, " |"), true
}

func parseEarlierSection(body string, e earlierReport, carriedRe, imageRe *regexp.Regexp) earlierSection {
	s := earlierSection{run: e.run, commit: e.commit, machine: e.machine}
	body = strings.TrimSpace(body)
	if first, rest, _ := strings.Cut(body, "\n"); strings.HasPrefix(first, carriedNote) {
		if m := carriedRe.FindStringSubmatch(first); m != nil {
			s.run, s.commit, s.machine = m[1], m[2], m[3]
		}
		body = strings.TrimSpace(rest)
	}
	var rows []string
	if i := strings.Index(body, headlinesOpen); i >= 0 {
		comment := body[i+len(headlinesOpen):]
		if j := strings.Index(comment, headlinesEnd); j >= 0 {
			comment = comment[:j]
		}
		rows = tableRows(comment)
		body = strings.TrimSpace(body[:i])
	} else if i := strings.Index(body, "\nTargets:\n"); i >= 0 {
		rows = tableRows(body[i:])
	}
	for _, r := range rows {
		if h, ok := parseHeadlineRow(r); ok {
			s.heads = append(s.heads, h)
		}
	}
	for _, m := range imageRe.FindAllStringSubmatch(body, -1) {
		s.images = append(s.images, path.Base(m[1]))
	}
	s.body = body + "\n"
	return s
}

// tableRows are the data rows of the first Markdown table in text.
func tableRows(text string) []string {
	var rows []string
	in := false
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			if in {
				break
			}
			continue
		}
		in = true
		if strings.HasPrefix(line, "| figure |") || strings.HasPrefix(line, "|---") {
			continue
		}
		rows = append(rows, line)
	}
	return rows
}

// parseHeadlineRow reads a row of headlineTable.
func parseHeadlineRow(row string) (headline, bool) {
	cells := strings.Split(strings.Trim(row, "|"), " | ")
	if len(cells) != 4 {
		return headline{}, false
	}
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	h := headline{Figure: cells[0], Value: cells[1], Target: cells[2]}
	if h.Target == "—" {
		h.Target = ""
	}
	h.Met = cells[3] == "met"
	return h, h.Figure != ""
}
