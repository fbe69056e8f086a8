// Package onnxpb writes ONNX models: a small graph builder that encodes
// onnx.proto's ModelProto with protowire, so hedge needs no generated ONNX
// Go package. Only what hedge's graphs use is here: tensors (float32, int64,
// float16 and raw bytes), nodes with int, float, ints and tensor attributes,
// graph inputs and outputs with symbolic dimensions, and model metadata.
//
// The encoding is deterministic: the same graph built in the same order
// gives the same bytes, which the trainer's byte-identical guarantee needs.
package onnxpb

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Element types of onnx.proto's TensorProto.DataType.
const (
	Float   int32 = 1
	Uint8   int32 = 2
	Int8    int32 = 3
	Uint16  int32 = 4
	Int32   int32 = 6
	Int64   int32 = 7
	Float16 int32 = 10
)

// Field numbers of onnx.proto (IR version 8/9). Named so the encoder reads
// like the schema.
const (
	modelIRVersion       = 1
	modelProducerName    = 2
	modelProducerVersion = 3
	modelDocString       = 6
	modelGraph           = 7
	modelOpsetImport     = 8
	modelMetadataProps   = 14

	opsetDomain  = 1
	opsetVersion = 2

	graphNode        = 1
	graphName        = 2
	graphInitializer = 5
	graphInput       = 11
	graphOutput      = 12

	nodeInput  = 1
	nodeOutput = 2
	nodeName   = 3
	nodeOpType = 4
	nodeAttr   = 5

	attrName   = 1
	attrF      = 2
	attrI      = 3
	attrT      = 5
	attrInts   = 8
	attrType   = 20
	attrTFloat = 1
	attrTInt   = 2
	attrTTensr = 4
	attrTInts  = 7

	tensorDims     = 1
	tensorDataType = 2
	tensorName     = 8
	tensorRawData  = 9

	valueName = 1
	valueType = 2

	typeTensor      = 1
	tensorElemType  = 1
	tensorShape     = 2
	shapeDim        = 1
	dimValue        = 1
	dimParam        = 2
	stringStringKey = 1
	stringStringVal = 2
)

// IRVersion is the ONNX IR version written; 8 is read by every ONNX Runtime
// since 1.10.
const IRVersion = 8

// Tensor is a named constant tensor (an initializer or a Constant's value).
type Tensor struct {
	Name string
	Type int32
	Dims []int64
	// Raw is the little-endian data, as TensorProto.raw_data.
	Raw []byte
}

// FloatTensor returns a float32 tensor.
func FloatTensor(name string, dims []int64, data []float32) Tensor {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return Tensor{Name: name, Type: Float, Dims: dims, Raw: raw}
}

// Int64Tensor returns an int64 tensor.
func Int64Tensor(name string, dims []int64, data []int64) Tensor {
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return Tensor{Name: name, Type: Int64, Dims: dims, Raw: raw}
}

// Int32Tensor returns an int32 tensor.
func Int32Tensor(name string, dims []int64, data []int32) Tensor {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(v))
	}
	return Tensor{Name: name, Type: Int32, Dims: dims, Raw: raw}
}

// Float16Tensor returns a float16 tensor from IEEE half-precision bits.
func Float16Tensor(name string, dims []int64, bits []uint16) Tensor {
	raw := make([]byte, 2*len(bits))
	for i, v := range bits {
		binary.LittleEndian.PutUint16(raw[2*i:], v)
	}
	return Tensor{Name: name, Type: Float16, Dims: dims, Raw: raw}
}

// Attr is one node attribute; set exactly one of the value fields.
type Attr struct {
	Name   string
	Int    *int64
	Float  *float32
	Ints   []int64
	Tensor *Tensor
}

// IntAttr returns an int attribute.
func IntAttr(name string, v int64) Attr { return Attr{Name: name, Int: &v} }

// FloatAttr returns a float attribute.
func FloatAttr(name string, v float32) Attr { return Attr{Name: name, Float: &v} }

// IntsAttr returns an ints attribute.
func IntsAttr(name string, v ...int64) Attr { return Attr{Name: name, Ints: v} }

// TensorAttr returns a tensor attribute.
func TensorAttr(name string, t Tensor) Attr { return Attr{Name: name, Tensor: &t} }

// Node is one operator application.
type Node struct {
	Name    string
	Op      string
	Inputs  []string
	Outputs []string
	Attrs   []Attr
}

// Dim is a dimension of a graph input or output: a fixed size, or a named
// symbolic one (Param) such as "batch".
type Dim struct {
	Value int64
	Param string
}

// Value is a graph input or output.
type Value struct {
	Name  string
	Type  int32
	Shape []Dim
}

// Graph is a model's graph and metadata.
type Graph struct {
	Name         string
	Nodes        []Node
	Initializers []Tensor
	Inputs       []Value
	Outputs      []Value
	// Opset is the default-domain operator set version.
	Opset int64
	// Producer names the writer; Metadata becomes metadata_props, in order.
	Producer, ProducerVersion, Doc string
	Metadata                       [][2]string
}

// Marshal encodes g as an ONNX ModelProto.
func (g *Graph) Marshal() []byte {
	var b []byte
	b = protowire.AppendTag(b, modelIRVersion, protowire.VarintType)
	b = protowire.AppendVarint(b, IRVersion)
	if g.Producer != "" {
		b = appendString(b, modelProducerName, g.Producer)
	}
	if g.ProducerVersion != "" {
		b = appendString(b, modelProducerVersion, g.ProducerVersion)
	}
	if g.Doc != "" {
		b = appendString(b, modelDocString, g.Doc)
	}
	b = appendMessage(b, modelGraph, g.graph())
	var op []byte
	op = appendString(op, opsetDomain, "")
	op = protowire.AppendTag(op, opsetVersion, protowire.VarintType)
	op = protowire.AppendVarint(op, uint64(g.Opset))
	b = appendMessage(b, modelOpsetImport, op)
	for _, kv := range g.Metadata {
		var e []byte
		e = appendString(e, stringStringKey, kv[0])
		e = appendString(e, stringStringVal, kv[1])
		b = appendMessage(b, modelMetadataProps, e)
	}
	return b
}

func (g *Graph) graph() []byte {
	var b []byte
	for _, n := range g.Nodes {
		b = appendMessage(b, graphNode, node(n))
	}
	b = appendString(b, graphName, g.Name)
	for _, t := range g.Initializers {
		b = appendMessage(b, graphInitializer, tensor(t))
	}
	for _, v := range g.Inputs {
		b = appendMessage(b, graphInput, value(v))
	}
	for _, v := range g.Outputs {
		b = appendMessage(b, graphOutput, value(v))
	}
	return b
}

func node(n Node) []byte {
	var b []byte
	for _, in := range n.Inputs {
		b = appendString(b, nodeInput, in)
	}
	for _, out := range n.Outputs {
		b = appendString(b, nodeOutput, out)
	}
	if n.Name != "" {
		b = appendString(b, nodeName, n.Name)
	}
	b = appendString(b, nodeOpType, n.Op)
	for _, a := range n.Attrs {
		b = appendMessage(b, nodeAttr, attr(a))
	}
	return b
}

func attr(a Attr) []byte {
	var b []byte
	b = appendString(b, attrName, a.Name)
	switch {
	case a.Float != nil:
		b = protowire.AppendTag(b, attrF, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(*a.Float))
		b = appendVarint(b, attrType, attrTFloat)
	case a.Int != nil:
		b = appendVarint(b, attrI, uint64(*a.Int))
		b = appendVarint(b, attrType, attrTInt)
	case a.Tensor != nil:
		b = appendMessage(b, attrT, tensor(*a.Tensor))
		b = appendVarint(b, attrType, attrTTensr)
	default:
		for _, v := range a.Ints {
			b = appendVarint(b, attrInts, uint64(v))
		}
		b = appendVarint(b, attrType, attrTInts)
	}
	return b
}

func tensor(t Tensor) []byte {
	var b []byte
	for _, d := range t.Dims {
		b = appendVarint(b, tensorDims, uint64(d))
	}
	b = appendVarint(b, tensorDataType, uint64(t.Type))
	b = appendString(b, tensorName, t.Name)
	b = protowire.AppendTag(b, tensorRawData, protowire.BytesType)
	b = protowire.AppendBytes(b, t.Raw)
	return b
}

func value(v Value) []byte {
	var shape []byte
	for _, d := range v.Shape {
		var dim []byte
		if d.Param != "" {
			dim = appendString(dim, dimParam, d.Param)
		} else {
			dim = appendVarint(dim, dimValue, uint64(d.Value))
		}
		shape = appendMessage(shape, shapeDim, dim)
	}
	var tt []byte
	tt = appendVarint(tt, tensorElemType, uint64(v.Type))
	tt = appendMessage(tt, tensorShape, shape)
	var typ []byte
	typ = appendMessage(typ, typeTensor, tt)
	var b []byte
	b = appendString(b, valueName, v.Name)
	b = appendMessage(b, valueType, typ)
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendMessage(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}
