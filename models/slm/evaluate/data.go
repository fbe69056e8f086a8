// Package evaluate measures an intent classifier on a labelled data set with
// out-of-scope queries (CLINC150): it picks an acceptance threshold on the
// validation split and reports in-scope accuracy, out-of-scope recall,
// coverage and the risk–coverage curve on the test split.
package evaluate

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
)

// OOS is the label of out-of-scope items.
const OOS = "oos"

// Item is one labelled utterance; Label is OOS for out-of-scope ones.
type Item struct {
	Text  string
	Label string
}

// Dataset is a data set split for training, threshold picking and testing.
type Dataset struct {
	Train, Val, Test []Item
	// Intents are the in-scope labels, sorted.
	Intents []string
}

// LoadCLINC150 reads CLINC150's data_full.json (Larson et al. 2019):
// train, val and test with their oos_ counterparts.
func LoadCLINC150(path string) (Dataset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Dataset{}, fmt.Errorf("read clinc150: %w", err)
	}
	return ParseCLINC150(data)
}

// ParseCLINC150 parses CLINC150's JSON: an object of splits, each a list
// of [text, label] pairs.
func ParseCLINC150(data []byte) (Dataset, error) {
	var raw map[string][][2]string
	if err := json.Unmarshal(data, &raw); err != nil {
		return Dataset{}, fmt.Errorf("parse clinc150: %w", err)
	}
	for _, k := range []string{"train", "val", "test", "oos_train", "oos_val", "oos_test"} {
		if len(raw[k]) == 0 {
			return Dataset{}, fmt.Errorf("parse clinc150: split %q is missing or empty", k)
		}
	}
	conv := func(split string, wantOOS bool) ([]Item, error) {
		out := make([]Item, 0, len(raw[split]))
		for i, p := range raw[split] {
			if p[0] == "" || p[1] == "" {
				return nil, fmt.Errorf("parse clinc150: %s item %d has an empty text or label", split, i)
			}
			if (p[1] == OOS) != wantOOS {
				return nil, fmt.Errorf("parse clinc150: %s item %d has label %q", split, i, p[1])
			}
			out = append(out, Item{Text: p[0], Label: p[1]})
		}
		return out, nil
	}
	var ds Dataset
	for _, s := range []struct {
		dst  *[]Item
		name string
	}{{&ds.Train, "train"}, {&ds.Val, "val"}, {&ds.Test, "test"}} {
		in, err := conv(s.name, false)
		if err != nil {
			return Dataset{}, err
		}
		oos, err := conv("oos_"+s.name, true)
		if err != nil {
			return Dataset{}, err
		}
		*s.dst = append(in, oos...)
	}
	seen := map[string]bool{}
	for _, it := range ds.Train {
		if it.Label != OOS && !seen[it.Label] {
			seen[it.Label] = true
			ds.Intents = append(ds.Intents, it.Label)
		}
	}
	slices.Sort(ds.Intents)
	return ds, nil
}
