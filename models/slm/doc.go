// Package slm is hedge's small language model tier: an intent classifier
// that hedge trains itself from example utterances and runs through ONNX
// Runtime.
//
// The compact model hashes word uni- and bi-grams and character n-grams
// (Featurizer), sums their embeddings (an embedding bag), passes the sum
// through one ReLU hidden layer and a softmax over the intents, with the
// logits divided by a temperature fitted on held-out examples so that the
// confidence is calibrated. Train does this in pure Go; Export writes the
// same computation as an ONNX graph; Classifier runs that graph in ONNX
// Runtime. The Go forward pass (Model.Predict) exists for training and for
// the parity test, never to serve queries.
package slm
