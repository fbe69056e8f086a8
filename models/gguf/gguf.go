// Package gguf reads the header of GGUF model files and writes new ones.
//
// Reading is for checks before a file reaches llama.cpp: hedge refuses a
// file that is not GGUF, is truncated, or claims absurd sizes with an error
// that says which, and learns the tensor types (to decide whether CPU
// repacking will copy the weights, see models/llm). Writing exists for test
// and benchmark fixtures: llama-architecture files of real shapes with
// random weights (fixture.go), because no registry here serves model files.
package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// ErrNotGGUF is returned when a file does not start with the GGUF magic.
var ErrNotGGUF = errors.New("not a GGUF file")

// ErrCorrupt is returned (wrapped with the detail) when a GGUF header is
// malformed or the file is shorter than its tensors need.
var ErrCorrupt = errors.New("corrupt GGUF file")

// Type is a ggml tensor type as stored in GGUF.
type Type uint32

// The tensor types hedge writes or reasons about (ggml.h numbering).
const (
	F32    Type = 0
	F16    Type = 1
	Q4_0   Type = 2
	Q4_1   Type = 3
	Q5_0   Type = 6
	Q5_1   Type = 7
	Q8_0   Type = 8
	Q2_K   Type = 10
	Q3_K   Type = 11
	Q4_K   Type = 12
	Q5_K   Type = 13
	Q6_K   Type = 14
	IQ4_NL Type = 20
	BF16   Type = 30
)

// traits is a type's block size (elements) and block bytes.
var traits = map[Type][2]uint64{
	0: {1, 4}, 1: {1, 2}, 2: {32, 18}, 3: {32, 20}, 6: {32, 22}, 7: {32, 24},
	8: {32, 34}, 9: {32, 36}, 10: {256, 84}, 11: {256, 110}, 12: {256, 144},
	13: {256, 176}, 14: {256, 210}, 15: {256, 292}, 16: {256, 66}, 17: {256, 74},
	18: {256, 98}, 19: {256, 50}, 20: {32, 18}, 21: {256, 110}, 22: {256, 82},
	23: {256, 136}, 24: {1, 1}, 25: {1, 2}, 26: {1, 4}, 27: {1, 8}, 28: {1, 8},
	29: {256, 56}, 30: {1, 2}, 34: {256, 54}, 35: {256, 66}, 39: {32, 17},
}

var typeNames = map[Type]string{
	F32: "F32", F16: "F16", Q4_0: "Q4_0", Q4_1: "Q4_1", Q5_0: "Q5_0", Q5_1: "Q5_1",
	Q8_0: "Q8_0", Q2_K: "Q2_K", Q3_K: "Q3_K", Q4_K: "Q4_K", Q5_K: "Q5_K", Q6_K: "Q6_K",
	IQ4_NL: "IQ4_NL", BF16: "BF16",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type%d", uint32(t))
}

// Bytes returns the storage size of n elements of type t; ok is false for
// a type this package does not know or an n that is not whole blocks.
func (t Type) Bytes(n uint64) (size uint64, ok bool) {
	tr, known := traits[t]
	if !known || n%tr[0] != 0 {
		return 0, false
	}
	return n / tr[0] * tr[1], true
}

// Tensor describes one tensor of a GGUF file.
type Tensor struct {
	Name string
	// Dims are in ggml order: Dims[0] is the contiguous (row) dimension.
	Dims []uint64
	Type Type
	// Offset is relative to the start of the data section.
	Offset uint64
}

// Elements is the number of values in t.
func (t Tensor) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// ArrayInfo stands for an array value: its element type and length (the
// elements themselves are skipped when reading).
type ArrayInfo struct {
	Type uint32
	Len  uint64
}

// Info is what Inspect learned about a GGUF file.
type Info struct {
	Version uint32
	// KV holds the metadata: strings, numbers and bools as Go values,
	// arrays as ArrayInfo.
	KV      map[string]any
	Tensors []Tensor
	// DataOffset is where the tensor data starts in the file.
	DataOffset uint64
	FileSize   int64
}

// String returns the string value of key, "" when absent or not a string.
func (i *Info) String(key string) string {
	s, _ := i.KV[key].(string)
	return s
}

// Limits against hostile or corrupt headers: no real model comes close.
const (
	maxKV      = 1 << 20
	maxTensors = 1 << 20
	maxString  = 1 << 26
	maxDims    = 4
)

// Inspect reads the header of the GGUF file at path and checks that every
// tensor's data lies inside the file. It never reads tensor data.
func Inspect(path string) (*Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	info, err := Read(f, st.Size())
	if err != nil {
		return nil, err
	}
	return info, nil
}

// Read parses a GGUF header from r, a file of size bytes.
func Read(r io.Reader, size int64) (*Info, error) {
	cr := &countReader{r: bufio.NewReaderSize(r, 1<<16)}
	d := decoder{r: cr}
	var magic [4]byte
	if _, err := io.ReadFull(cr, magic[:]); err != nil {
		return nil, fmt.Errorf("%w: file is %d bytes, too short for a header", ErrNotGGUF, size)
	}
	if string(magic[:]) != Magic {
		return nil, fmt.Errorf("%w: starts with %q", ErrNotGGUF, magic[:])
	}
	info := &Info{KV: map[string]any{}, FileSize: size}
	info.Version = d.u32()
	if d.err == nil && (info.Version < 2 || info.Version > 3) {
		return nil, fmt.Errorf("%w: GGUF version %d is not supported (2 or 3)", ErrCorrupt, info.Version)
	}
	nTensors := d.u64()
	nKV := d.u64()
	if d.err == nil && (nTensors > maxTensors || nKV > maxKV) {
		return nil, fmt.Errorf("%w: header claims %d tensors and %d metadata keys", ErrCorrupt, nTensors, nKV)
	}
	for i := uint64(0); i < nKV && d.err == nil; i++ {
		k := d.str()
		typ := d.u32()
		v := d.value(typ)
		if d.err == nil {
			info.KV[k] = v
		}
	}
	for i := uint64(0); i < nTensors && d.err == nil; i++ {
		var t Tensor
		t.Name = d.str()
		nd := d.u32()
		if d.err == nil && nd > maxDims {
			return nil, fmt.Errorf("%w: tensor %q has %d dimensions", ErrCorrupt, t.Name, nd)
		}
		for j := uint32(0); j < nd && d.err == nil; j++ {
			t.Dims = append(t.Dims, d.u64())
		}
		t.Type = Type(d.u32())
		t.Offset = d.u64()
		info.Tensors = append(info.Tensors, t)
	}
	if d.err != nil {
		if errors.Is(d.err, io.EOF) || errors.Is(d.err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: header is truncated (file is %d bytes)", ErrCorrupt, size)
		}
		return nil, d.err
	}
	align := uint64(32)
	if a, ok := info.KV["general.alignment"].(uint32); ok && a > 0 && a&(a-1) == 0 {
		align = uint64(a)
	}
	info.DataOffset = (cr.n + align - 1) / align * align
	for _, t := range info.Tensors {
		n, ok := t.Type.Bytes(t.Elements())
		if !ok {
			continue // unknown to us; llama.cpp will judge
		}
		end := info.DataOffset + t.Offset + n
		if end < info.DataOffset || end > uint64(size) {
			return nil, fmt.Errorf("%w: tensor %q needs bytes up to %d but the file has %d (truncated download?)", ErrCorrupt, t.Name, end, size)
		}
	}
	return info, nil
}

type countReader struct {
	r io.Reader
	n uint64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += uint64(n)
	return n, err
}

// decoder reads little-endian GGUF values; the first error sticks.
type decoder struct {
	r   io.Reader
	err error
	buf [8]byte
}

func (d *decoder) read(n int) []byte {
	if d.err != nil {
		return d.buf[:n]
	}
	_, d.err = io.ReadFull(d.r, d.buf[:n])
	return d.buf[:n]
}

func (d *decoder) u8() uint8   { return d.read(1)[0] }
func (d *decoder) u16() uint16 { return binary.LittleEndian.Uint16(d.read(2)) }
func (d *decoder) u32() uint32 { return binary.LittleEndian.Uint32(d.read(4)) }
func (d *decoder) u64() uint64 { return binary.LittleEndian.Uint64(d.read(8)) }

func (d *decoder) str() string {
	n := d.u64()
	if d.err != nil {
		return ""
	}
	if n > maxString {
		d.err = fmt.Errorf("%w: string of %d bytes", ErrCorrupt, n)
		return ""
	}
	b := make([]byte, n)
	_, d.err = io.ReadFull(d.r, b)
	return string(b)
}

func (d *decoder) skip(n uint64) {
	if d.err == nil {
		_, d.err = io.CopyN(io.Discard, d.r, int64(n))
	}
}

// GGUF metadata value types.
const (
	tU8 uint32 = iota
	tI8
	tU16
	tI16
	tU32
	tI32
	tF32
	tBool
	tString
	tArray
	tU64
	tI64
	tF64
)

var scalarSize = map[uint32]uint64{tU8: 1, tI8: 1, tU16: 2, tI16: 2, tU32: 4, tI32: 4, tF32: 4, tBool: 1, tU64: 8, tI64: 8, tF64: 8}

func (d *decoder) value(typ uint32) any {
	switch typ {
	case tU8:
		return d.u8()
	case tI8:
		return int8(d.u8())
	case tU16:
		return d.u16()
	case tI16:
		return int16(d.u16())
	case tU32:
		return d.u32()
	case tI32:
		return int32(d.u32())
	case tF32:
		return math.Float32frombits(d.u32())
	case tBool:
		return d.u8() != 0
	case tString:
		return d.str()
	case tU64:
		return d.u64()
	case tI64:
		return int64(d.u64())
	case tF64:
		return math.Float64frombits(d.u64())
	case tArray:
		et := d.u32()
		n := d.u64()
		if d.err != nil {
			return nil
		}
		if n > maxString {
			d.err = fmt.Errorf("%w: array of %d elements", ErrCorrupt, n)
			return nil
		}
		switch {
		case et == tString:
			for i := uint64(0); i < n && d.err == nil; i++ {
				l := d.u64()
				if d.err == nil && l > maxString {
					d.err = fmt.Errorf("%w: string of %d bytes", ErrCorrupt, l)
				}
				d.skip(l)
			}
		case scalarSize[et] > 0:
			d.skip(n * scalarSize[et])
		default:
			d.err = fmt.Errorf("%w: array of value type %d", ErrCorrupt, et)
		}
		return ArrayInfo{Type: et, Len: n}
	}
	if d.err == nil {
		d.err = fmt.Errorf("%w: metadata value type %d", ErrCorrupt, typ)
	}
	return nil
}
