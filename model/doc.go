// Package model is the deliverable of a run: the chosen architecture trained stand-alone,
// stored together with the preprocessing of its dataset so that it predicts on raw rows.
//
// An Artifact is kept in an object store under a prefix as two objects:
//
//	<prefix>/weights.bin  the float32 weights, little-endian, in the nn layout: for each layer
//	                      (hidden layers in order, then the output layer) W as in×out
//	                      row-major, then b (out); n_0 = input width, n_{L+1} = outputs.
//	<prefix>/model.json   everything else: format version, architecture ("32-144-24" and the
//	                      width list), task and output width, input width, parameter count,
//	                      the weights' size and SHA-256, metrics, seed, creation time, the run
//	                      spec (opaque JSON) and the full dataset manifest (preprocessing and
//	                      label mapping).
//
// Save writes weights.bin first and model.json last, each with an atomic Put, after removing
// any older model.json; a model is therefore loadable exactly when its model.json exists, and a
// save that fails midway never leaves old metadata paired with new weights. Load checks the
// format version, the checksum and every shape against the manifest, naming the object and
// field at fault.
//
// Prediction (Predictor.PredictCSV) encodes every raw row with the manifest's preprocessing
// (dataset.RowEncoder, the code ingest used to write the shards), so a row gets exactly the
// features the network was trained on, and decodes outputs back to original labels or units.
//
// ExportONNX writes the network alone as an ONNX graph over preprocessed features; the
// manifest's preprocessing must be applied before it (see ExportONNX).
package model
