// Command fasttextbench times fastText's answer to one query at a time, the
// latency beside hedge's in the SLM benchmark (scripts/bench-slm.sh). It
// writes each line of a text file to `fasttext predict-prob MODEL - 1` and
// times the answer line. fastText has no in-process API here, so the
// figure includes a pipe round trip; the same loop through `cat` measures
// that floor, alternating with fastText so that both see the same machine.
//
//	go run ./models/slm/evaluate/fasttextbench -model ft.bin -input test.txt -json out.json
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/hedge-edge/hedge/models/slm/evaluate"
)

func main() {
	model := flag.String("model", "", "fastText model (.bin)")
	input := flag.String("input", "", "texts, one per line (hedge-bench eval --write-fasttext's test.txt)")
	bin := flag.String("fasttext", "fasttext", "the fastText program")
	jsonOut := flag.String("json", "", "write the figures as JSON to this file")
	flag.Parse()
	if *model == "" || *input == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*bin, *model, *input, *jsonOut); err != nil {
		fmt.Fprintln(os.Stderr, "fasttextbench:", err)
		os.Exit(1)
	}
}

// lineProc is a child that answers each line it reads with one line.
type lineProc struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	waited bool
}

func start(name string, args ...string) (*lineProc, error) {
	cmd := exec.Command(name, args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &lineProc{cmd: cmd, in: in, out: bufio.NewReader(out)}, nil
}

// ask writes line and returns the time to the answer line.
func (p *lineProc) ask(line string) (time.Duration, error) {
	t0 := time.Now()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		return 0, err
	}
	if _, err := p.out.ReadString('\n'); err != nil {
		return 0, fmt.Errorf("%s: %w", p.cmd.Path, err)
	}
	return time.Since(t0), nil
}

// close ends the child's input and waits for it to exit.
func (p *lineProc) close() error {
	p.in.Close()
	p.waited = true
	return p.cmd.Wait()
}

// kill stops a child that close did not (an error on the way).
func (p *lineProc) kill() {
	if !p.waited {
		p.cmd.Process.Kill()
		p.close()
	}
}

func run(bin, model, input, jsonOut string) error {
	data, err := os.ReadFile(input)
	if err != nil {
		return err
	}
	var texts []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			texts = append(texts, l)
		}
	}
	if len(texts) == 0 {
		return fmt.Errorf("%s holds no text", input)
	}
	ft, err := start(bin, "predict-prob", model, "-", "1")
	if err != nil {
		return err
	}
	defer ft.kill()
	floor, err := start("cat")
	if err != nil {
		return err
	}
	defer floor.kill()
	// The first answer waits for the model to load: not a query's cost.
	if _, err := ft.ask(texts[0]); err != nil {
		return err
	}
	var tf, tc []time.Duration
	for _, t := range texts {
		d, err := ft.ask(t)
		if err != nil {
			return err
		}
		tf = append(tf, d)
		if d, err = floor.ask(t); err != nil {
			return err
		}
		tc = append(tc, d)
	}
	if err := ft.close(); err != nil {
		return fmt.Errorf("fasttext: %w", err)
	}
	if err := floor.close(); err != nil {
		return fmt.Errorf("cat: %w", err)
	}
	r := evaluate.FastTextLatency{FastText: summarize(tf), PipeFloor: summarize(tc)}
	fmt.Printf("fastText, one query at a time through a pipe: p50 %.1f µs, p99 %.1f µs (pipe floor p50 %.1f µs, p99 %.1f µs), %d queries\n",
		r.FastText.P50us, r.FastText.P99us, r.PipeFloor.P50us, r.PipeFloor.P99us, r.FastText.N)
	if jsonOut == "" {
		return nil
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	return os.WriteFile(jsonOut, append(b, '\n'), 0o644)
}

// summarize uses the same quantile rule as hedge eval's latency.
func summarize(ds []time.Duration) evaluate.LatencyStats {
	slices.Sort(ds)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	q := func(p float64) float64 { return us(ds[min(len(ds)-1, int(p*float64(len(ds))))]) }
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return evaluate.LatencyStats{N: len(ds), P50us: q(0.50), P99us: q(0.99), MeanUS: us(sum) / float64(len(ds))}
}
