package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
)

// profile is the part of a pprof profile (profile.proto) a breakdown
// needs: each sample's stack as function names, leaf first, and its
// values, one per sample type.
type profile struct {
	types    []string // sample value types, e.g. "samples", "cpu"
	samples  []sample
	duration int64 // ns
}

type sample struct {
	stack  []string // function names, leaf first, inlined calls included
	values []int64
}

// valueIndex returns the index of sample type name; -1 when absent.
func (p *profile) valueIndex(name string) int {
	for i, t := range p.types {
		if t == name {
			return i
		}
	}
	return -1
}

// parseProfile decodes a pprof profile, gzipped (as runtime/pprof writes
// it) or not.
func parseProfile(b []byte) (*profile, error) {
	if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
	}
	type rawSample struct {
		locs   []uint64
		values []int64
	}
	var (
		strs      []string
		typeIdx   []int64
		raws      []rawSample
		locLines  = map[uint64][]uint64{} // location id → function ids, innermost first
		funcNames = map[uint64]int64{}    // function id → name's string index
		duration  int64
	)
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch num {
		case 1: // sample_type
			return fields(v, func(num protowire.Number, _ protowire.Type, _ []byte, n uint64) error {
				if num == 1 {
					typeIdx = append(typeIdx, int64(n))
				}
				return nil
			})
		case 2: // sample
			var s rawSample
			err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
				switch num {
				case 1:
					return repeatedVarint(typ, v, n, func(x uint64) { s.locs = append(s.locs, x) })
				case 2:
					return repeatedVarint(typ, v, n, func(x uint64) { s.values = append(s.values, int64(x)) })
				}
				return nil
			})
			raws = append(raws, s)
			return err
		case 4: // location
			var id uint64
			var lines []uint64
			err := fields(v, func(num protowire.Number, _ protowire.Type, v []byte, n uint64) error {
				switch num {
				case 1:
					id = n
				case 4: // line
					return fields(v, func(num protowire.Number, _ protowire.Type, _ []byte, n uint64) error {
						if num == 1 {
							lines = append(lines, n)
						}
						return nil
					})
				}
				return nil
			})
			locLines[id] = lines
			return err
		case 5: // function
			var id uint64
			var name int64
			err := fields(v, func(num protowire.Number, _ protowire.Type, _ []byte, n uint64) error {
				switch num {
				case 1:
					id = n
				case 2:
					name = int64(n)
				}
				return nil
			})
			funcNames[id] = name
			return err
		case 6: // string_table
			strs = append(strs, string(v))
		case 10: // duration_nanos
			duration = int64(n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	str := func(i int64) string {
		if i < 0 || int(i) >= len(strs) {
			return "?"
		}
		return strs[i]
	}
	p := &profile{duration: duration}
	for _, i := range typeIdx {
		p.types = append(p.types, str(i))
	}
	for _, r := range raws {
		s := sample{values: r.values}
		for _, l := range r.locs {
			fns := locLines[l]
			if len(fns) == 0 {
				s.stack = append(s.stack, "?")
			}
			for _, f := range fns {
				name := str(funcNames[f])
				if name == "" {
					name = "?" // C code without symbols
				}
				s.stack = append(s.stack, name)
			}
		}
		p.samples = append(p.samples, s)
	}
	return p, nil
}

// fields calls f for each field of the message b: its number, wire type,
// and its bytes (length-delimited) or its value (varint, fixed).
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		var (
			v []byte
			n uint64
		)
		switch typ {
		case protowire.VarintType:
			n, l = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, l = protowire.ConsumeBytes(b)
		case protowire.Fixed64Type:
			n, l = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var x uint32
			x, l = protowire.ConsumeFixed32(b)
			n = uint64(x)
		default:
			return fmt.Errorf("unexpected wire type %d", typ)
		}
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if err := f(num, typ, v, n); err != nil {
			return err
		}
	}
	return nil
}

// repeatedVarint reads a repeated integer field, packed or not.
func repeatedVarint(typ protowire.Type, v []byte, n uint64, add func(uint64)) error {
	if typ == protowire.VarintType {
		add(n)
		return nil
	}
	if typ != protowire.BytesType {
		return errors.New("repeated integer of an unexpected wire type")
	}
	for len(v) > 0 {
		x, l := protowire.ConsumeVarint(v)
		if l < 0 {
			return protowire.ParseError(l)
		}
		add(x)
		v = v[l:]
	}
	return nil
}
