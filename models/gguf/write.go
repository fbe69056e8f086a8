package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// KV is one metadata entry to write. Value is one of string, bool,
// uint32, int32, uint64, float32, []string, []float32 or []int32.
type KV struct {
	Key   string
	Value any
}

// TensorData is a tensor to write: its description (Offset is computed)
// and a function that writes exactly its bytes.
type TensorData struct {
	Tensor
	WriteData func(w io.Writer) error
}

const alignment = 32

// Write creates the GGUF v3 file at path: it writes a temporary file beside
// it and renames it into place, so a failed write leaves no partial model.
func Write(path string, kvs []KV, tensors []TensorData) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".gguf-*")
	if err != nil {
		return fmt.Errorf("write gguf: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 1<<20)
	e := encoder{w: w}
	e.raw([]byte(Magic))
	e.u32(3)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(kvs) + 1))
	e.str("general.alignment")
	e.u32(tU32)
	e.u32(alignment)
	for _, kv := range kvs {
		e.str(kv.Key)
		if err := e.value(kv.Value); err != nil {
			return fmt.Errorf("write gguf: key %s: %w", kv.Key, err)
		}
	}
	var off uint64
	sizes := make([]uint64, len(tensors))
	for i, t := range tensors {
		n, ok := t.Type.Bytes(t.Elements())
		if !ok {
			return fmt.Errorf("write gguf: tensor %s: %d elements of %s are not whole blocks", t.Name, t.Elements(), t.Type)
		}
		sizes[i] = n
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(off)
		off = pad(off + n)
	}
	e.raw(make([]byte, pad(e.n)-e.n))
	for i, t := range tensors {
		cw := &countWriter{w: w}
		if err := t.WriteData(cw); err != nil {
			return fmt.Errorf("write gguf: tensor %s: %w", t.Name, err)
		}
		if cw.n != sizes[i] {
			return fmt.Errorf("write gguf: tensor %s: wrote %d bytes, want %d", t.Name, cw.n, sizes[i])
		}
		if _, err := w.Write(make([]byte, pad(sizes[i])-sizes[i])); err != nil {
			return fmt.Errorf("write gguf: %w", err)
		}
	}
	if e.err != nil {
		return fmt.Errorf("write gguf: %w", e.err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write gguf: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write gguf: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write gguf: %w", err)
	}
	return nil
}

func pad(n uint64) uint64 { return (n + alignment - 1) / alignment * alignment }

type countWriter struct {
	w io.Writer
	n uint64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}

type encoder struct {
	w   io.Writer
	n   uint64
	err error
	buf [8]byte
}

func (e *encoder) raw(b []byte) {
	if e.err != nil {
		return
	}
	var n int
	n, e.err = e.w.Write(b)
	e.n += uint64(n)
}

func (e *encoder) u32(v uint32) { binary.LittleEndian.PutUint32(e.buf[:4], v); e.raw(e.buf[:4]) }
func (e *encoder) u64(v uint64) { binary.LittleEndian.PutUint64(e.buf[:8], v); e.raw(e.buf[:8]) }
func (e *encoder) str(s string) { e.u64(uint64(len(s))); e.raw([]byte(s)) }

func (e *encoder) value(v any) error {
	switch x := v.(type) {
	case string:
		e.u32(tString)
		e.str(x)
	case bool:
		e.u32(tBool)
		b := byte(0)
		if x {
			b = 1
		}
		e.raw([]byte{b})
	case uint32:
		e.u32(tU32)
		e.u32(x)
	case int32:
		e.u32(tI32)
		e.u32(uint32(x))
	case uint64:
		e.u32(tU64)
		e.u64(x)
	case float32:
		e.u32(tF32)
		e.u32(math.Float32bits(x))
	case []string:
		e.u32(tArray)
		e.u32(tString)
		e.u64(uint64(len(x)))
		for _, s := range x {
			e.str(s)
		}
	case []float32:
		e.u32(tArray)
		e.u32(tF32)
		e.u64(uint64(len(x)))
		for _, f := range x {
			e.u32(math.Float32bits(f))
		}
	case []int32:
		e.u32(tArray)
		e.u32(tI32)
		e.u64(uint64(len(x)))
		for _, i := range x {
			e.u32(uint32(i))
		}
	default:
		return fmt.Errorf("unsupported value type %T", v)
	}
	return nil
}
