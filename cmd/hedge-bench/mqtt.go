package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/hedge-edge/hedge/agent"
	"github.com/hedge-edge/hedge/agent/config"
)

// benchConfig is one `hedge-bench mqtt` run.
type benchConfig struct {
	broker, user, pass string
	queryTopic         string
	rates              []int
	duration, wait     time.Duration
	paths              []string
	cacheText, slmText string
}

// benchResult is one path at one rate. Latencies are milliseconds from
// the request's publish to its reply's arrival.
type benchResult struct {
	Path    string  `json:"path"`
	Rate    int     `json:"rate"`
	Sent    int     `json:"sent"`
	Replies int     `json:"replies"`
	Errors  int     `json:"errors"`
	Missing int     `json:"missing"`
	Tiers   string  `json:"tiers"`
	P50     float64 `json:"p50_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
	Mean    float64 `json:"mean_ms"`
	// Achieved is the send rate actually reached (q/s).
	Achieved float64 `json:"achieved_rate"`
}

func benchMQTT(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mqtt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	broker := fs.String("broker", "tcp://127.0.0.1:1883", "broker URL")
	user := fs.String("username", "", "broker user name (password from HEDGE_MQTT_PASSWORD)")
	prefix := fs.String("prefix", "hedge", "topic prefix of the hedge under test")
	device := fs.String("device", config.Default().Device, "device name of the hedge under test")
	rates := fs.String("rates", "500,1000,2000", "request rates (q/s), comma-separated")
	duration := fs.Duration("duration", 5*time.Second, "how long each rate runs")
	wait := fs.Duration("wait", 5*time.Second, "how long to wait for the last replies")
	paths := fs.String("paths", "floor,echo,cache,slm", "what to measure: floor (mosquitto pub→sub, one hop), echo (a bare paho client that republishes each request: two hops, the floor of any request/reply), cache (one text repeated: cache hits), slm (a volatile intent: classified every time)")
	cacheText := fs.String("cache-text", "hello", "text of the cache path (an answer that is cached)")
	slmText := fs.String("slm-text", "what time is it", "text of the slm path (a volatile intent, never cached)")
	jsonOut := fs.String("json", "", "write the results as JSON to this file")
	mdOut := fs.String("out", "", "write the Markdown table to this file")
	plotOut := fs.String("plot", "", "write a PNG plot of p50/p99 per rate to this file")
	from := fs.String("from-json", "", "measure nothing: print the table (and --plot) of a --json file of an earlier run")
	stopSaturated := fs.Bool("stop-saturated", false, "stop a path's rates at the first it does not sustain (a rate sweep: every request answered, p99 within the sustained bound)")
	targets := fs.String("targets", "cache", "whose targets the plot draws: cache (latency at 2,000 q/s) or slm (latency at 2,000 q/s and the sustained bound)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *targets != "cache" && *targets != "slm" {
		fmt.Fprintf(stderr, "hedge-bench mqtt: --targets: %q is not cache or slm\n", *targets)
		return 2
	}
	if *from != "" {
		var results []benchResult
		b, err := os.ReadFile(*from)
		if err == nil {
			err = json.Unmarshal(b, &results)
		}
		if err != nil {
			fmt.Fprintf(stderr, "hedge-bench mqtt: --from-json: %v\n", err)
			return 1
		}
		fmt.Fprint(stdout, benchTable(results))
		if *plotOut != "" {
			if err := benchPlot(results, *plotOut, *targets); err != nil {
				fmt.Fprintf(stderr, "hedge-bench mqtt: plot: %v\n", err)
				return 1
			}
		}
		return 0
	}
	bc := benchConfig{
		broker: *broker, user: *user, pass: os.Getenv("HEDGE_MQTT_PASSWORD"),
		queryTopic: *prefix + "/" + *device + "/query",
		duration:   *duration, wait: *wait,
		cacheText: *cacheText, slmText: *slmText,
	}
	for _, r := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n < 1 || n > 100000 {
			fmt.Fprintf(stderr, "hedge-bench mqtt: --rates: %q is not a rate between 1 and 100000\n", r)
			return 2
		}
		bc.rates = append(bc.rates, n)
	}
	for _, p := range strings.Split(*paths, ",") {
		p = strings.TrimSpace(p)
		if p != "floor" && p != "echo" && p != "cache" && p != "slm" {
			fmt.Fprintf(stderr, "hedge-bench mqtt: --paths: %q is not floor, echo, cache or slm\n", p)
			return 2
		}
		bc.paths = append(bc.paths, p)
	}
	if bc.duration <= 0 || bc.duration > 10*time.Minute {
		fmt.Fprintln(stderr, "hedge-bench mqtt: --duration must be between 0 and 10m")
		return 2
	}
	var results []benchResult
	for _, p := range bc.paths {
	rates:
		for _, r := range bc.rates {
			fmt.Fprintf(stderr, "bench mqtt: %s at %d q/s for %s…\n", p, r, bc.duration)
			res, err := runBench(ctx, bc, p, r)
			if err != nil {
				fmt.Fprintf(stderr, "hedge-bench mqtt: %s at %d q/s: %v\n", p, r, err)
				return 1
			}
			fmt.Fprintf(stderr, "bench mqtt: %s at %d q/s: p50 %.3f ms, p99 %.3f ms, max %.3f ms, %d/%d replies\n", p, r, res.P50, res.P99, res.Max, res.Replies, res.Sent)
			results = append(results, res)
			if ctx.Err() != nil {
				return 1
			}
			if *stopSaturated && !sustained(res) {
				fmt.Fprintf(stderr, "bench mqtt: %s does not sustain %d q/s; its higher rates are not run\n", p, r)
				break rates
			}
		}
	}
	table := benchTable(results)
	fmt.Fprint(stdout, table)
	if *mdOut != "" {
		if err := os.WriteFile(*mdOut, []byte(table), 0o644); err != nil {
			fmt.Fprintf(stderr, "hedge-bench mqtt: %v\n", err)
			return 1
		}
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "hedge-bench mqtt: %v\n", err)
			return 1
		}
	}
	if *plotOut != "" {
		if err := benchPlot(results, *plotOut, *targets); err != nil {
			fmt.Fprintf(stderr, "hedge-bench mqtt: plot: %v\n", err)
			return 1
		}
	}
	return 0
}

// benchClient connects a load generator client. ordered false runs each
// message handler in its own goroutine (a handler that publishes must not
// hold paho's router).
func benchClient(bc benchConfig, id string, ordered bool) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker(bc.broker).SetClientID(id).
		SetUsername(bc.user).SetPassword(bc.pass).SetCleanSession(true).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetOrderMatters(ordered)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect to %s: timed out", bc.broker)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect to %s: %w", bc.broker, err)
	}
	return c, nil
}

// runBench sends rate requests a second for bc.duration, open loop (on a
// schedule, whatever the replies do), and measures each round trip.
func runBench(ctx context.Context, bc benchConfig, path string, rate int) (benchResult, error) {
	res := benchResult{Path: path, Rate: rate}
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	replyTopic := "bench/" + run + "/" + path
	pub, err := benchClient(bc, "hedge-bench-pub-"+run, true)
	if err != nil {
		return res, err
	}
	defer pub.Disconnect(100)
	sub, err := benchClient(bc, "hedge-bench-sub-"+run, true)
	if err != nil {
		return res, err
	}
	defer sub.Disconnect(100)

	n := int(float64(rate) * bc.duration.Seconds())
	sent := make([]time.Time, n)
	lat := make([]float64, 0, n)
	seen := make([]bool, n)
	tiers := map[string]int{}
	var mu sync.Mutex
	done := make(chan struct{})
	got := 0
	prime := make(chan agent.Answer, 4)

	idPrefix := "bench-" + run + "-"
	handler := func(_ paho.Client, m paho.Message) {
		now := time.Now()
		var seq int
		var perr error
		if path == "floor" || path == "echo" {
			if seq, perr = strconv.Atoi(string(m.Payload())); perr != nil {
				return
			}
		} else {
			var a agent.Answer
			if json.Unmarshal(m.Payload(), &a) != nil {
				return
			}
			rest, ok := strings.CutPrefix(a.ID, idPrefix)
			if !ok {
				select {
				case prime <- a:
				default:
				}
				return
			}
			if seq, perr = strconv.Atoi(rest); perr != nil {
				return
			}
			mu.Lock()
			if a.Error != nil {
				res.Errors++
				tiers["error:"+string(a.Error.Code)]++
			} else {
				tiers[string(a.Tier)]++
			}
			mu.Unlock()
		}
		mu.Lock()
		defer mu.Unlock()
		if seq < 0 || seq >= n || seen[seq] || sent[seq].IsZero() {
			return
		}
		seen[seq] = true
		lat = append(lat, float64(now.Sub(sent[seq]).Nanoseconds())/1e6)
		got++
		if got == n {
			close(done)
		}
	}
	if tok := sub.Subscribe(replyTopic, 1, handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return res, fmt.Errorf("subscribe %s: %v", replyTopic, tok.Error())
	}

	topic, text := replyTopic, ""
	switch path {
	case "echo":
		// The responder a request/reply service would be if it did
		// nothing: receive, publish the payload back.
		topic = replyTopic + "/req"
		echo, err := benchClient(bc, "hedge-bench-echo-"+run, false)
		if err != nil {
			return res, err
		}
		defer echo.Disconnect(100)
		tok := echo.Subscribe(topic, 1, func(c paho.Client, m paho.Message) {
			c.Publish(replyTopic, 1, false, m.Payload())
		})
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return res, fmt.Errorf("subscribe %s: %v", topic, tok.Error())
		}
	case "cache":
		topic, text = bc.queryTopic, bc.cacheText
	case "slm":
		topic, text = bc.queryTopic, bc.slmText
	}
	payload := func(seq int, id string) []byte {
		if path == "floor" || path == "echo" {
			return []byte(strconv.Itoa(seq))
		}
		b, _ := json.Marshal(agent.Query{ID: id, Text: text, ReplyTo: replyTopic})
		return b
	}
	if path == "cache" || path == "slm" {
		// Prime: the first answer fills the cache and shows hedge is there.
		for i := range 2 {
			pub.Publish(topic, 1, false, payload(0, fmt.Sprintf("prime-%s-%d", run, i)))
			select {
			case a := <-prime:
				if a.Error != nil {
					return res, fmt.Errorf("hedge answered the priming request with %s: %s", a.Error.Code, a.Error.Message)
				}
			case <-time.After(30 * time.Second):
				return res, fmt.Errorf("no reply from hedge on %s within 30s: is hedge running with device %q?", replyTopic, strings.Split(bc.queryTopic, "/")[1])
			case <-ctx.Done():
				return res, ctx.Err()
			}
		}
	}

	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for seq := 0; seq < n; {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		// Send everything due by now, then sleep a little: timers are too
		// coarse to sleep one interval at 2,000 q/s.
		due := min(n, int(time.Since(start)/interval)+1)
		for ; seq < due; seq++ {
			b := payload(seq, idPrefix+strconv.Itoa(seq))
			mu.Lock()
			sent[seq] = time.Now()
			mu.Unlock()
			pub.Publish(topic, 1, false, b)
		}
		time.Sleep(min(interval, 200*time.Microsecond))
	}
	elapsed := time.Since(start)
	select {
	case <-done:
	case <-time.After(bc.wait):
	case <-ctx.Done():
	}
	mu.Lock()
	defer mu.Unlock()
	res.Sent = n
	res.Replies = got
	res.Missing = n - got
	res.Achieved = float64(n) / elapsed.Seconds()
	var ts []string
	for k, v := range tiers {
		ts = append(ts, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(ts)
	res.Tiers = strings.Join(ts, ", ")
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50 = quantile(lat, 0.50)
		res.P99 = quantile(lat, 0.99)
		res.Max = lat[len(lat)-1]
		sum := 0.0
		for _, v := range lat {
			sum += v
		}
		res.Mean = sum / float64(len(lat))
	}
	return res, nil
}

// quantile of sorted xs, nearest rank.
func quantile(xs []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[max(0, min(i, len(xs)-1))]
}

func benchTable(rs []benchResult) string {
	var b strings.Builder
	b.WriteString("| path | rate (q/s) | achieved | sent | replies | errors | p50 (ms) | p99 (ms) | max (ms) | tiers |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rs {
		tiers := r.Tiers
		switch r.Path {
		case "floor":
			tiers = "(mosquitto, one hop)"
		case "echo":
			tiers = "(bare responder, two hops)"
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %d | %d | %d | %.3f | %.3f | %.3f | %s |\n",
			r.Path, r.Rate, r.Achieved, r.Sent, r.Replies, r.Errors, r.P50, r.P99, r.Max, tiers)
	}
	return b.String()
}

// benchPlot draws p50 (solid) and p99 (dashed) per rate for each path on a
// log scale, with the targets of the cache or the slm path.
func benchPlot(rs []benchResult, file, targets string) error {
	p := plot.New()
	p.Title.Text = "hedge over MQTT (mosquitto, loopback): round trip"
	p.X.Label.Text = "request rate (q/s)"
	p.Y.Label.Text = "latency (ms, log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	colors := map[string]int{"floor": 0, "echo": 3, "cache": 1, "slm": 2}
	byPath := map[string][]benchResult{}
	var order []string
	for _, r := range rs {
		if _, ok := byPath[r.Path]; !ok {
			order = append(order, r.Path)
		}
		byPath[r.Path] = append(byPath[r.Path], r)
	}
	for _, path := range order {
		for _, q := range []struct {
			name string
			get  func(benchResult) float64
			dash []vg.Length
		}{
			{"p50", func(r benchResult) float64 { return r.P50 }, nil},
			{"p99", func(r benchResult) float64 { return r.P99 }, []vg.Length{vg.Points(4), vg.Points(3)}},
		} {
			var xy plotter.XYs
			for _, r := range byPath[path] {
				if v := q.get(r); v > 0 {
					xy = append(xy, plotter.XY{X: float64(r.Rate), Y: v})
				}
			}
			if len(xy) == 0 {
				continue
			}
			l, pts, err := plotter.NewLinePoints(xy)
			if err != nil {
				return err
			}
			c := plotutil.Color(colors[path])
			l.Color, pts.Color = c, c
			l.Dashes = q.dash
			pts.Shape = draw.CircleGlyph{}
			p.Add(l, pts)
			p.Legend.Add(path+" "+q.name, l, pts)
		}
	}
	// Room above the data for the legend.
	top := 0.0
	for _, r := range rs {
		top = max(top, r.P99, r.P50)
	}
	if top > 0 {
		p.Y.Max = top * 40
	}
	type line struct {
		ms    float64
		name  string
		color color.Color
		dash  []vg.Length
	}
	gray, dotted, dashed := color.Gray{Y: 150}, []vg.Length{vg.Points(1), vg.Points(3)}, []vg.Length{vg.Points(6), vg.Points(3)}
	lines := []line{{mqttTargetP50, fmt.Sprintf("target p50 (cache, %d q/s)", mqttTargetRate), gray, dotted},
		{mqttTargetP99, fmt.Sprintf("target p99 (cache, %d q/s)", mqttTargetRate), gray, dashed}}
	if targets == "slm" {
		p.Title.Text = "hedge's slm path over MQTT (mosquitto, loopback): rate sweep"
		lines = []line{{mqttSLMTargetP50, fmt.Sprintf("target p50 (slm, %d q/s)", mqttTargetRate), gray, dotted},
			{mqttSLMTargetP99, fmt.Sprintf("target p99 (slm, %d q/s)", mqttTargetRate), gray, dashed},
			{mqttSustainedP99, "sustained: p99 within this", color.RGBA{R: 200, G: 60, B: 60, A: 255}, dotted}}
		// The rate to sustain, as a vertical line.
		p.X.Max = max(p.X.Max, mqttSLMTargetRate*1.05)
		v, err := plotter.NewLine(plotter.XYs{{X: mqttSLMTargetRate, Y: p.Y.Min}, {X: mqttSLMTargetRate, Y: p.Y.Max}})
		if err != nil {
			return err
		}
		v.Color, v.Dashes = color.RGBA{R: 200, G: 60, B: 60, A: 255}, dashed
		p.Add(v)
		p.Legend.Add(fmt.Sprintf("target: sustain %d q/s", mqttSLMTargetRate), v)
	}
	for _, target := range lines {
		l, err := plotter.NewLine(plotter.XYs{{X: p.X.Min, Y: target.ms}, {X: p.X.Max, Y: target.ms}})
		if err != nil {
			return err
		}
		l.Color = target.color
		l.Dashes = target.dash
		p.Add(l)
		p.Legend.Add(target.name, l)
	}
	p.Legend.Left = false
	p.Legend.Padding = vg.Points(2)
	return p.Save(7*vg.Inch, 4.5*vg.Inch, file)
}
