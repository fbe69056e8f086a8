package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/hedge-edge/hedge/models/llm"
)

// result is one JSON line of llmbench, cbench or bench.mjs.
type result struct {
	Impl         string  `json:"impl"`
	Model        string  `json:"model"`
	Threads      int     `json:"threads"`
	PromptTokens int     `json:"prompt_tokens"`
	PromptTPS    float64 `json:"prompt_tps"`
	GenTokens    int     `json:"gen_tokens"`
	GenTPS       float64 `json:"gen_tps"`
	PeakRSSMB    float64 `json:"peak_rss_mb"`
	Variant      string  `json:"variant"`
	TokenBytes   int64   `json:"token_bytes"`
	// CopyGBps is set on the lines of the bandwidth probe (impl membw,
	// models/llm/cbench/membw.c), which name no model.
	CopyGBps float64 `json:"copy_gbps"`
}

// summary is the median over the rounds of one implementation on one model.
type summary struct {
	prompt, gen, rss float64
	n                int
	tokens           [2]int
	threads          int
	variant          string
}

var implOrder = []string{"hedge", "c", "node-llama-cpp"}

// report reads result lines from r and writes a markdown table to w, a
// bar chart to png and the medians as JSON to jsonOut (each when not "").
// The bandwidth probe's lines give the copy bandwidth (their median), the
// hedge lines the bytes each model reads per generated token.
func report(r io.Reader, w io.Writer, png, jsonOut string) error {
	by := map[string]map[string][]result{}
	var modelsSeen []string
	var copyGBps []float64
	tokenBytes := map[string]int64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var res result
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			return fmt.Errorf("report: %w in %q", err, line)
		}
		if res.Impl == "membw" {
			copyGBps = append(copyGBps, res.CopyGBps)
			continue
		}
		m := filepath.Base(res.Model)
		if res.TokenBytes > 0 {
			tokenBytes[m] = res.TokenBytes
		}
		if by[m] == nil {
			by[m] = map[string][]result{}
			modelsSeen = append(modelsSeen, m)
		}
		by[m][res.Impl] = append(by[m][res.Impl], res)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	sums := map[string]map[string]summary{}
	for m, impls := range by {
		sums[m] = map[string]summary{}
		for impl, rs := range impls {
			var p, g, s []float64
			var variants []string
			for _, x := range rs {
				p = append(p, x.PromptTPS)
				g = append(g, x.GenTPS)
				s = append(s, x.PeakRSSMB)
				if x.Variant != "" && !slices.Contains(variants, x.Variant) {
					variants = append(variants, x.Variant)
				}
			}
			// More than one variant over the rounds would be a finding of
			// its own: all are named.
			sums[m][impl] = summary{median(p), median(g), median(s), len(rs), [2]int{rs[0].PromptTokens, rs[0].GenTokens}, rs[0].Threads,
				strings.Join(variants, "+")}
		}
	}
	// The medians, each model's implementations in implOrder: the table's
	// rows and -json's list.
	var out []llm.BenchMedian
	bw := 0.0
	if len(copyGBps) > 0 {
		bw = median(copyGBps)
	}
	for _, m := range modelsSeen {
		for _, impl := range implOrder {
			if s, ok := sums[m][impl]; ok {
				out = append(out, llm.BenchMedian{Model: m, Impl: impl, Threads: s.threads, PromptTokens: s.tokens[0], GenTokens: s.tokens[1],
					PromptTPS: s.prompt, GenTPS: s.gen, PeakRSSMB: s.rss, Runs: s.n, Variant: s.variant,
					TokenBytes: tokenBytes[m], CopyGBps: bw})
			}
		}
	}
	if _, err := io.WriteString(w, llm.BenchTable(out)+"\n"+llm.BandwidthNote(out)); err != nil {
		return err
	}
	if jsonOut != "" {
		b, _ := json.MarshalIndent(out, "", "  ")
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if png == "" {
		return nil
	}
	return plotSummary(sums, modelsSeen, png)
}

func plotSummary(sums map[string]map[string]summary, modelsSeen []string, path string) error {
	sort.Strings(modelsSeen)
	metrics := []struct {
		title string
		get   func(summary) float64
	}{
		{"prompt tokens/s (higher is better)", func(s summary) float64 { return s.prompt }},
		{"generation tokens/s (higher is better)", func(s summary) float64 { return s.gen }},
		{"peak RSS MiB (lower is better)", func(s summary) float64 { return s.rss }},
	}
	var row []*plot.Plot
	for _, mt := range metrics {
		p := plot.New()
		p.Title.Text = mt.title
		w := vg.Points(14)
		top := 0.0
		for i, impl := range implOrder {
			var vals plotter.Values
			for _, m := range modelsSeen {
				vals = append(vals, mt.get(sums[m][impl]))
				top = max(top, mt.get(sums[m][impl]))
			}
			bars, err := plotter.NewBarChart(vals, w)
			if err != nil {
				return fmt.Errorf("plot: %w", err)
			}
			bars.Offset = w * vg.Length(i-1)
			bars.Color = []plotColor{{0x1f, 0x77, 0xb4}, {0x7f, 0x7f, 0x7f}, {0x2c, 0xa0, 0x2c}}[i].rgba()
			bars.LineStyle.Width = 0
			p.Add(bars)
			p.Legend.Add(impl, bars)
		}
		var names []string
		for _, m := range modelsSeen {
			names = append(names, strings.TrimSuffix(m, ".gguf"))
		}
		p.NominalX(names...)
		p.Legend.Top = true
		p.Y.Min = 0
		p.Y.Max = top * 1.35 // room for the legend above the bars
		row = append(row, p)
	}
	const wd, ht = 15 * vg.Inch, 4.5 * vg.Inch
	img := vgimg.New(wd, ht)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(row), PadX: vg.Millimeter * 6, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align([][]*plot.Plot{row}, tiles, dc)
	for i, p := range row {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("plot: %w", err)
	}
	return f.Close()
}
