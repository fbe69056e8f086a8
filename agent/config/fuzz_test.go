package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// problemStart is how every config problem begins: the line of the file,
// the key, or the file itself when it is not YAML.
var problemStart = regexp.MustCompile(`^(line [0-9]+: |config is not valid YAML: |[a-z_]+(\.[a-z_]+|\[[0-9]+\])*: |cloud\.anonymize\.policy\.)`)

// FuzzParse feeds arbitrary documents to the config loader. It never
// panics; a refusal lists problems that each begin with the line or the key
// they are about, one per line of `hedge config check`; an accepted config
// holds only finite numbers and reads back the same once written out.
func FuzzParse(f *testing.F) {
	f.Add([]byte("version: 1\ndevice: pi\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		c2, err2 := Parse(data)
		// Printed, because NaN is not DeepEqual to itself.
		if fmt.Sprint(c) != fmt.Sprint(c2) || (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("Parse(%q) is not deterministic", data)
		}
		if err != nil {
			var p Problems
			if !errors.As(err, &p) || len(p) == 0 {
				t.Fatalf("Parse(%q) error %T %v, want Problems", data, err, err)
			}
			for _, s := range p {
				if !problemStart.MatchString(s) || strings.ContainsAny(s, "\n\r") || !utf8.ValidString(s) {
					t.Fatalf("Parse(%q): problem %q names neither a line nor a key, or is not one line of text", data, s)
				}
			}
			return
		}
		if path, ok := nonFinite(reflect.ValueOf(c), ""); ok {
			t.Fatalf("Parse(%q) accepted a non-finite %s", data, path)
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("marshal %+v: %v", c, err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) accepted, but its config written out is refused:\n%s\n%v", data, out, err)
		}
		if out2, _ := yaml.Marshal(back); !bytes.Equal(out, out2) {
			t.Fatalf("Parse(%q): config does not read back:\n%s\nthen\n%s", data, out, out2)
		}
	})
}

// nonFinite finds a NaN or infinite float in v and returns its path.
func nonFinite(v reflect.Value, path string) (string, bool) {
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		return path, math.IsNaN(v.Float()) || math.IsInf(v.Float(), 0)
	case reflect.Struct:
		for i := range v.NumField() {
			if p, ok := nonFinite(v.Field(i), path+"."+v.Type().Field(i).Name); ok {
				return p, true
			}
		}
	}
	return "", false
}
