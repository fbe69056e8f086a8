package evaluate

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// fastText is the baseline `make bench` compares against; these helpers
// let it run on exactly the splits and metrics hedge eval uses.

const ftLabel = "__label__"

// WriteFastText writes ds in fastText's format to dir: train.txt
// ("__label__intent text" lines, out-of-scope items included as a class,
// as hedge trains them) and val.txt and test.txt (one text per line, in
// the data set's order, for `fasttext predict-prob`).
func WriteFastText(ds Dataset, dir string) error {
	clean := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	write := func(name string, items []Item, labelled bool) error {
		var b strings.Builder
		for _, it := range items {
			if labelled {
				b.WriteString(ftLabel + it.Label + " ")
			}
			b.WriteString(clean(it.Text))
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("write fasttext data: %w", err)
		}
		return nil
	}
	if err := write("train.txt", ds.Train, true); err != nil {
		return err
	}
	if err := write("val.txt", ds.Val, false); err != nil {
		return err
	}
	return write("test.txt", ds.Test, false)
}

// ReadFastTextPredictions reads `fasttext predict-prob MODEL FILE 1` output
// for items (one "__label__x p" line per item, in order).
func ReadFastTextPredictions(r io.Reader, items []Item) ([]Scored, error) {
	sc := bufio.NewScanner(r)
	out := make([]Scored, 0, len(items))
	for sc.Scan() {
		if len(out) == len(items) {
			return nil, fmt.Errorf("fasttext predictions: more lines than the %d items", len(items))
		}
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !strings.HasPrefix(f[0], ftLabel) {
			return nil, fmt.Errorf("fasttext predictions: line %d: want \"__label__x probability\", got %q", len(out)+1, sc.Text())
		}
		p, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return nil, fmt.Errorf("fasttext predictions: line %d: %w", len(out)+1, err)
		}
		pred := strings.TrimPrefix(f[0], ftLabel)
		if pred == OOS {
			pred = ""
		}
		out = append(out, Scored{Gold: items[len(out)].Label, Pred: pred, Conf: min(p, 1)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("fasttext predictions: %w", err)
	}
	if len(out) != len(items) {
		return nil, fmt.Errorf("fasttext predictions: %d lines for %d items", len(out), len(items))
	}
	return out, nil
}

// Baseline measures another classifier's predictions with hedge's rules:
// the threshold for target recall and Larson's, both picked on val.
func Baseline(name string, val, test []Scored, target float64) []Row {
	t := At(test, PickByRecall(val, target))
	t.Name = fmt.Sprintf("%s: val OOS recall ≥ %.2f", name, target)
	l := At(test, PickLarson(val))
	l.Name = name + ": Larson"
	u := At(test, 0)
	u.Name = name + ": no threshold"
	return []Row{t, l, u}
}
