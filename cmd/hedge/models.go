package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/hedge-edge/hedge/models"
)

const modelsUsage = `usage:
  hedge models pull NAME [--config FILE]               (a model of list --available)
  hedge models pull URL --sha256 HEX [--name NAME] [--config FILE]
  hedge models list [--available] [--config FILE]
  hedge models verify [NAME...] [--config FILE]
  hedge models rm NAME [--config FILE]`

// modelsCmd manages the models folder (<state_dir>/models).
func modelsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return modelsWith(ctx, args, stdout, stderr, models.DefaultCatalog())
}

// modelsWith is modelsCmd with the models it knows by name.
func modelsWith(ctx context.Context, args []string, stdout, stderr io.Writer, catalog models.Catalog) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, modelsUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("models "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: $HEDGE_CONFIG, else built-in defaults)")
	sum := fs.String("sha256", "", "expected sha256 of the file (pull)")
	name := fs.String("name", "", "name in the manifest (pull; default: the catalog's name, or the URL's file name)")
	available := fs.Bool("available", false, "list the models hedge can pull by name (list)")
	// Flags may come before or after the positional arguments.
	var pos []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "hedge: config: %v\n", err)
		return 1
	}
	store := modelStore(cfg)
	switch {
	case sub == "pull" && len(pos) == 1:
		opts, code := pullOptions(pos[0], *sum, *name, catalog, stderr)
		if code != 0 {
			return code
		}
		return pull(ctx, store, opts, stdout, stderr)
	case sub == "list" && len(pos) == 0 && *available:
		return listAvailable(store, catalog, stdout, stderr)
	case sub == "list" && len(pos) == 0:
		return listInstalled(store, stdout, stderr)
	case sub == "verify":
		res, err := store.Verify(ctx, pos...)
		bad := err != nil
		for _, r := range res {
			if r.Err != nil {
				bad = true
				fmt.Fprintf(stdout, "%s: FAILED: %v\n", r.Entry.Name, r.Err)
				continue
			}
			fmt.Fprintf(stdout, "%s: ok\n", r.Entry.Name)
		}
		if err != nil {
			fmt.Fprintf(stderr, "hedge models verify: %v\n", err)
		}
		if bad {
			return 1
		}
		return 0
	case sub == "rm" && len(pos) == 1:
		if err := store.Remove(pos[0]); err != nil {
			fmt.Fprintf(stderr, "hedge models rm: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "removed %s\n", pos[0])
		return 0
	}
	fmt.Fprintln(stderr, modelsUsage)
	return 2
}

// pullOptions is what to download for `pull REF`: a URL with its
// --sha256, or the name of a catalog model (whose checksum is known).
func pullOptions(ref, sum, name string, catalog models.Catalog, stderr io.Writer) (models.PullOptions, int) {
	if strings.Contains(ref, "://") {
		if sum == "" {
			fmt.Fprintln(stderr, "hedge models pull: --sha256 is required: a model is installed only when its checksum is known")
			return models.PullOptions{}, 2
		}
		return models.PullOptions{URL: ref, SHA256: sum, Name: name}, 0
	}
	e, ok := catalog.Lookup(ref)
	if !ok {
		fmt.Fprintf(stderr, "hedge models pull: %s is not a model hedge knows (%s; see hedge models list --available), nor a URL\n", ref, strings.Join(catalog.Names(), ", "))
		return models.PullOptions{}, 2
	}
	if sum != "" && !strings.EqualFold(sum, e.SHA256) {
		fmt.Fprintf(stderr, "hedge models pull: --sha256 %s is not the checksum of %s (%s)\n", sum, e.Name, e.SHA256)
		return models.PullOptions{}, 2
	}
	o := e.PullOptions()
	if name != "" {
		o.Name = name
	}
	return o, 0
}

func pull(ctx context.Context, store *models.Store, o models.PullOptions, stdout, stderr io.Writer) int {
	bar := downloadBar(stderr)
	o.Progress = bar.update
	e, err := store.Pull(ctx, o)
	bar.finish()
	if err != nil {
		fmt.Fprintf(stderr, "hedge models pull: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "installed %s (%s, sha256 %s) in %s\n", e.Name, humanBytes(e.Size), e.SHA256, store.Path(e))
	fmt.Fprintf(stdout, "use it with llm.model: %s\n", e.Name)
	return 0
}

func listInstalled(store *models.Store, stdout, stderr io.Writer) int {
	list, err := store.List()
	if err != nil {
		fmt.Fprintf(stderr, "hedge models list: %v\n", err)
		return 1
	}
	if len(list) == 0 {
		fmt.Fprintf(stdout, "no models in %s\n", store.Dir())
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tSHA256\tADDED\tFILE")
	for _, e := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, humanBytes(e.Size), e.SHA256[:12], e.Added.Format(time.DateOnly), store.Path(e))
	}
	tw.Flush()
	return 0
}

// listAvailable prints the catalog, marking the models already installed
// (by checksum, whatever name they were pulled under).
func listAvailable(store *models.Store, catalog models.Catalog, stdout, stderr io.Writer) int {
	list, err := store.List()
	if err != nil {
		fmt.Fprintf(stderr, "hedge models list: %v\n", err)
		return 1
	}
	installed := map[string]string{}
	for _, e := range list {
		installed[e.SHA256] = e.Name
	}
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMODEL\tSIZE\tRAM\tLICENSE\tINSTALLED\tBOARDS")
	for _, e := range catalog {
		inst := "-"
		if n, ok := installed[e.SHA256]; ok {
			inst = "as " + n
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, e.Title, humanBytes(e.Size), humanBytes(e.RAM), e.License, inst, strings.Join(e.Boards, ", "))
	}
	tw.Flush()
	fmt.Fprintln(stdout, "\npull one with: hedge models pull NAME")
	return 0
}

// bar draws download progress: a redrawn line on a terminal, a line per
// 10% otherwise (logs, CI).
type bar struct {
	w        io.Writer
	tty      bool
	start    time.Time
	last     time.Time
	lastTick int64
	drawn    bool
	first    int64
}

func downloadBar(w io.Writer) *bar {
	return &bar{w: w, tty: isTerminal(w), start: time.Now(), first: -1}
}

// isTerminal reports whether w is a terminal: progress is redrawn in place
// there, and printed a line at a time to logs and CI.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (b *bar) update(done, total int64) {
	if b.first < 0 {
		b.first = done // resumed bytes do not count toward the speed
	}
	now := time.Now()
	rate := float64(done-b.first) / max(now.Sub(b.start).Seconds(), 1e-3)
	if b.tty {
		if now.Sub(b.last) < 150*time.Millisecond && done != total {
			return
		}
		b.last = now
		line := fmt.Sprintf("%s  %s/s", humanBytes(done), humanBytes(int64(rate)))
		if total > 0 {
			pct := float64(done) / float64(total)
			n := int(pct * 30)
			eta := ""
			if rate > 0 {
				eta = "  ETA " + time.Duration(float64(total-done)/rate*float64(time.Second)).Round(time.Second).String()
			}
			line = fmt.Sprintf("[%s%s] %5.1f%%  %s / %s  %s/s%s", strings.Repeat("=", n), strings.Repeat(" ", 30-n), pct*100, humanBytes(done), humanBytes(total), humanBytes(int64(rate)), eta)
		}
		fmt.Fprintf(b.w, "\r%-90s", line)
		b.drawn = true
		return
	}
	if total > 0 {
		tick := done * 10 / total
		if tick == b.lastTick && done != total {
			return
		}
		b.lastTick = tick
		fmt.Fprintf(b.w, "download %3d%%  %s / %s\n", done*100/total, humanBytes(done), humanBytes(total))
	}
}

func (b *bar) finish() {
	if b.drawn {
		fmt.Fprintln(b.w)
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
