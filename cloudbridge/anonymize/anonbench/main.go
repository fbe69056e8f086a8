// Command anonbench measures the anonymizer's latency against the length of
// the query, from 50 bytes to hedge's default 16 KiB limit, and draws it:
// scripts/bench-cloud.sh runs it for `make bench`.
//
//	go run ./cloudbridge/anonymize/anonbench -o bin/cloud-anonymizer.png [-json FILE]
//
// Each query is ordinary text with an entity every ~40 bytes (e-mail,
// phone, IPv4, MAC, a listed person), the dense case.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"os"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/hedge-edge/hedge/cloudbridge/anonymize"
)

func main() {
	out := flag.String("o", "bin/cloud-anonymizer.png", "PNG to write")
	budget := flag.Duration("t", 300*time.Millisecond, "time to spend per length")
	jsonOut := flag.String("json", "", "also write the figures per length as JSON to this file")
	flag.Parse()
	if err := run(*out, *jsonOut, *budget); err != nil {
		fmt.Fprintln(os.Stderr, "anonbench:", err)
		os.Exit(1)
	}
}

var pieces = []string{
	"please write to maria.schmidt@example.org about the boiler ",
	"and ask Jonas to call +49 30 1234567 before noon ",
	"the camera at 192.168.1.20 keeps rebooting since Monday ",
	"its MAC is 00:1A:2B:3C:4D:5E according to the router page ",
	"what could cause that and how do I reset it safely ",
}

func query(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString(pieces[i%len(pieces)])
	}
	return b.String()[:n]
}

func run(out, jsonOut string, budget time.Duration) error {
	a, err := anonymize.New(anonymize.Options{Names: anonymize.Names{Owner: "Maria Schmidt", Household: []string{"Jonas", "Lena"}}})
	if err != nil {
		return err
	}
	lengths := []int{50, 100, 200, 500, 1000, 2000, 4000, 8000, 16384}
	p50s, p99s := make(plotter.XYs, 0, len(lengths)), make(plotter.XYs, 0, len(lengths))
	var points []anonymize.BenchPoint
	fmt.Printf("%8s %8s %10s %10s %10s\n", "bytes", "runs", "p50 µs", "p99 µs", "MB/s")
	for _, n := range lengths {
		q := query(n)
		a.Anonymize(q) // warm up
		var lat []time.Duration
		for start := time.Now(); time.Since(start) < budget || len(lat) < 20; {
			t0 := time.Now()
			a.Anonymize(q)
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
		us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
		fmt.Printf("%8d %8d %10.1f %10.1f %10.1f\n", n, len(lat), us(p50), us(p99), float64(n)/us(p50))
		points = append(points, anonymize.BenchPoint{Bytes: n, Runs: len(lat), P50us: us(p50), P99us: us(p99), MBps: float64(n) / us(p50)})
		p50s = append(p50s, plotter.XY{X: float64(n), Y: us(p50)})
		p99s = append(p99s, plotter.XY{X: float64(n), Y: us(p99)})
	}
	if jsonOut != "" {
		b, _ := json.MarshalIndent(points, "", "  ")
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	p := plot.New()
	p.Title.Text = "hedge anonymizer: latency per query vs. query length"
	p.X.Label.Text = "query length (bytes, log scale)"
	p.Y.Label.Text = "µs per query (log scale)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	for _, s := range []struct {
		name string
		xys  plotter.XYs
		c    color.RGBA
	}{{"p50", p50s, color.RGBA{B: 200, A: 255}}, {"p99", p99s, color.RGBA{R: 200, A: 255}}} {
		l, pts, err := plotter.NewLinePoints(s.xys)
		if err != nil {
			return err
		}
		l.Color, pts.Color = s.c, s.c
		p.Add(l, pts)
		p.Legend.Add(s.name, l, pts)
	}
	p.Legend.Top, p.Legend.Left = false, false // bottom right: the curves rise away from it
	p.Legend.XOffs, p.Legend.YOffs = -vg.Millimeter*3, vg.Millimeter*3
	return p.Save(7*vg.Inch, 4.5*vg.Inch, out)
}
