package model

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/schemas"
)

// ONNX constants of the exported graph.
const (
	ONNXInput      = "features"
	ONNXOutput     = "output"
	ONNXOpset      = 13
	onnxIRVersion  = 7 // the IR version that introduced opset 13
	onnxFloat      = 1 // TensorProto.DataType FLOAT
	onnxAttrInt    = 2 // AttributeProto.AttributeType INT
	onnxBatchParam = "N"
)

// ExportONNX writes the network of a as an ONNX model (opset 13) on PREPROCESSED features:
// input "features" float32 [N, In], for every hidden layer MatMul, Add (bias) and Relu, then
// a final MatMul and Add, followed by Softmax over the classes (multiclass), Sigmoid (binary,
// one output: P(class 1)) or nothing (regression); output "output" float32 [N, Outputs].
//
// The graph does not contain the preprocessing: raw rows must first be encoded as the
// manifest describes (standardize numeric columns with mean imputation and missing
// indicators, one-hot categorical columns), and a regression output is the standardized
// target, y = output·std + mean. The model's metadata_props carry what that takes:
// tabnas.manifest (the full manifest JSON), tabnas.features (the name of every input
// feature), tabnas.classes (the label of every output, classification), tabnas.target_mean
// and tabnas.target_std (regression), tabnas.arch and tabnas.task.
func ExportONNX(a *Artifact, w io.Writer) error {
	if err := a.Validate(); err != nil {
		return err
	}
	man, err := a.Manifest.Encode()
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	meta := [][2]string{
		{"tabnas.arch", a.Arch.String()},
		{"tabnas.task", taskName(a.Task)},
		{"tabnas.target", a.Manifest.Target.Column},
	}
	if a.Task.Kind == nn.Regression {
		meta = append(meta,
			[2]string{"tabnas.target_mean", strconv.FormatFloat(a.Manifest.Target.Mean, 'g', -1, 64)},
			[2]string{"tabnas.target_std", strconv.FormatFloat(targetScale(a.Manifest), 'g', -1, 64)})
	} else {
		cls, _ := json.Marshal(a.Manifest.Target.Classes)
		meta = append(meta, [2]string{"tabnas.classes", string(cls)})
	}
	feats, _ := json.Marshal(FeatureNames(a.Manifest))
	meta = append(meta, [2]string{"tabnas.features", string(feats)}, [2]string{"tabnas.manifest", string(man)})

	var m pbuf
	m.int64(1, onnxIRVersion)
	m.str(2, "tabnas")
	m.str(3, "model-format-"+strconv.Itoa(FormatVersion))
	m.int64(5, 1)
	m.str(6, "Feed-forward network over preprocessed features; apply the manifest in "+
		"metadata_props[tabnas.manifest] to raw rows first. Architecture "+a.Arch.String()+", task "+taskName(a.Task)+".")
	m.msg(7, func(g *pbuf) { onnxGraph(g, a) })
	m.msg(8, func(o *pbuf) { o.str(1, ""); o.int64(2, ONNXOpset) })
	for _, kv := range meta {
		m.msg(14, func(e *pbuf) { e.str(1, kv[0]); e.str(2, kv[1]) })
	}
	if _, err := w.Write(m.b); err != nil {
		return fmt.Errorf("model: writing ONNX: %w", err)
	}
	return nil
}

// onnxGraph encodes the GraphProto. The weights are sliced straight out of the flat nn
// layout, which for a stand-alone network is W (in×out row-major) then b per layer, exactly
// the MatMul operand [in, out] and the broadcast bias [out].
func onnxGraph(g *pbuf, a *Artifact) {
	hidden := len(a.Arch)
	prev, h, off := a.In, ONNXInput, 0
	var inits []func(*pbuf)
	for l := 0; l <= hidden; l++ {
		out := a.Outputs()
		if l < hidden {
			out = a.Arch[l]
		}
		wName, bName := fmt.Sprintf("W%d", l), fmt.Sprintf("b%d", l)
		wv := a.Weights[off : off+prev*out]
		bv := a.Weights[off+prev*out : off+prev*out+out]
		off += prev*out + out
		wDims := []int64{int64(prev), int64(out)}
		inits = append(inits,
			func(t *pbuf) { onnxTensor(t, wName, wDims, wv) },
			func(t *pbuf) { onnxTensor(t, bName, []int64{int64(out)}, bv) })

		mm, z := fmt.Sprintf("matmul%d", l), fmt.Sprintf("linear%d", l)
		if l == hidden && a.Task.Kind == nn.Regression {
			z = ONNXOutput
		}
		onnxNode(g, "MatMul", mm, []string{h, wName}, mm)
		onnxNode(g, "Add", z, []string{mm, bName}, z)
		h = z
		if l < hidden {
			r := fmt.Sprintf("relu%d", l)
			onnxNode(g, "Relu", r, []string{z}, r)
			h = r
		}
		prev = out
	}
	switch a.Task.Kind {
	case nn.Multiclass:
		onnxNode(g, "Softmax", "softmax", []string{h}, ONNXOutput, intAttr{"axis", 1})
	case nn.Binary:
		onnxNode(g, "Sigmoid", "sigmoid", []string{h}, ONNXOutput)
	}
	g.str(2, "tabnas_mlp")
	for _, f := range inits {
		g.msg(5, f)
	}
	g.msg(11, func(v *pbuf) { onnxValueInfo(v, ONNXInput, int64(a.In)) })
	g.msg(12, func(v *pbuf) { onnxValueInfo(v, ONNXOutput, int64(a.Outputs())) })
}

// intAttr is an integer node attribute.
type intAttr struct {
	name string
	v    int64
}

// onnxNode appends a NodeProto (field 1 of GraphProto).
func onnxNode(g *pbuf, op, name string, inputs []string, output string, attrs ...intAttr) {
	g.msg(1, func(n *pbuf) {
		for _, in := range inputs {
			n.str(1, in)
		}
		n.str(2, output)
		n.str(3, name)
		n.str(4, op)
		for _, at := range attrs {
			n.msg(5, func(p *pbuf) {
				p.str(1, at.name)
				p.int64(3, at.v)
				p.int64(20, onnxAttrInt)
			})
		}
	})
}

// onnxTensor encodes a float TensorProto with raw little-endian data.
func onnxTensor(t *pbuf, name string, dims []int64, v []float32) {
	t.packedInt64(1, dims)
	t.int64(2, onnxFloat)
	t.str(8, name)
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	t.bytes(9, raw)
}

// onnxValueInfo encodes a float tensor [N, width] with a symbolic batch dimension.
func onnxValueInfo(v *pbuf, name string, width int64) {
	v.str(1, name)
	v.msg(2, func(tp *pbuf) { // TypeProto
		tp.msg(1, func(tt *pbuf) { // TypeProto.Tensor
			tt.int64(1, onnxFloat)
			tt.msg(2, func(sh *pbuf) { // TensorShapeProto
				sh.msg(1, func(d *pbuf) { d.str(2, onnxBatchParam) })
				sh.msg(1, func(d *pbuf) { d.int64(1, width) })
			})
		})
	})
}

// FeatureNames names every preprocessed feature: a numeric column by its name (plus
// "name#missing" for its missing indicator), a categorical column by "name=value" per
// vocabulary entry (plus "name#missing" for its missing slot).
func FeatureNames(m *schemas.Manifest) []string {
	names := make([]string, 0, m.FeatureWidth)
	for _, in := range m.Inputs {
		switch {
		case in.Numeric != nil:
			names = append(names, in.Name)
			if in.Numeric.MissingIndicator {
				names = append(names, in.Name+"#missing")
			}
		case in.Categorical != nil:
			for _, v := range in.Categorical.Vocab {
				names = append(names, in.Name+"="+v)
			}
			if in.Categorical.MissingSlot {
				names = append(names, in.Name+"#missing")
			}
		}
	}
	return names
}

// pbuf is a minimal protobuf encoder: just the wire types the ONNX messages above need.
type pbuf struct{ b []byte }

func (p *pbuf) varint(v uint64) { p.b = binary.AppendUvarint(p.b, v) }

func (p *pbuf) tag(field, wire int) { p.varint(uint64(field)<<3 | uint64(wire)) }

func (p *pbuf) int64(field int, v int64) {
	p.tag(field, 0)
	p.varint(uint64(v))
}

func (p *pbuf) bytes(field int, b []byte) {
	p.tag(field, 2)
	p.varint(uint64(len(b)))
	p.b = append(p.b, b...)
}

func (p *pbuf) str(field int, s string) {
	p.tag(field, 2)
	p.varint(uint64(len(s)))
	p.b = append(p.b, s...)
}

func (p *pbuf) packedInt64(field int, vs []int64) {
	var q pbuf
	for _, v := range vs {
		q.varint(uint64(v))
	}
	p.bytes(field, q.b)
}

// msg encodes a nested message with fill and appends it as a length-delimited field.
func (p *pbuf) msg(field int, fill func(*pbuf)) {
	var q pbuf
	fill(&q)
	p.bytes(field, q.b)
}
