package main

import (
	"fmt"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/hedge-edge/hedge/models/slm/evaluate"
)

// evalPlot writes the report's curves as a PNG: the risk–coverage curve (error
// rate of the accepted queries against the share accepted) and in-scope
// accuracy against out-of-scope recall, with the chosen thresholds marked.
func evalPlot(r evaluate.Report, path string) error {
	rc := plot.New()
	rc.Title.Text = "Risk–coverage (test)"
	rc.X.Label.Text = "coverage (share of queries answered by the SLM)"
	rc.Y.Label.Text = "risk (share of answered queries that are wrong)"
	tr := plot.New()
	tr.Title.Text = "In-scope accuracy vs out-of-scope recall (test)"
	tr.X.Label.Text = "out-of-scope recall"
	tr.Y.Label.Text = "in-scope accuracy"
	var cov, acc plotter.XYs
	for _, row := range r.Curve {
		cov = append(cov, plotter.XY{X: row.Coverage, Y: row.Risk})
		acc = append(acc, plotter.XY{X: row.OOSRecall, Y: row.InScopeAccuracy})
	}
	l1, err := plotter.NewLine(cov)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	l2, err := plotter.NewLine(acc)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	rc.Add(l1, plotter.NewGrid())
	tr.Add(l2, plotter.NewGrid())
	for i, row := range []evaluate.Row{r.Target, r.Larson} {
		label := fmt.Sprintf("%s: t=%.2f", row.Name, row.Threshold)
		p1, _ := plotter.NewScatter(plotter.XYs{{X: row.Coverage, Y: row.Risk}})
		p2, _ := plotter.NewScatter(plotter.XYs{{X: row.OOSRecall, Y: row.InScopeAccuracy}})
		for _, p := range []*plotter.Scatter{p1, p2} {
			p.GlyphStyle.Radius = vg.Points(4)
			p.GlyphStyle.Color = plotter.DefaultGlyphStyle.Color
			p.GlyphStyle.Shape = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.TriangleGlyph{}}[i]
		}
		rc.Add(p1)
		tr.Add(p2)
		rc.Legend.Add(label, p1)
		tr.Legend.Add(label, p2)
	}
	rc.Legend.Top = true
	rc.Legend.Left = true
	tr.Legend.Left = true
	const w, h = 12 * vg.Inch, 5 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	plots := [][]*plot.Plot{{rc, tr}}
	canvases := plot.Align(plots, tiles, dc)
	rc.Draw(canvases[0][0])
	tr.Draw(canvases[0][1])
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
