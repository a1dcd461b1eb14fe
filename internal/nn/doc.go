// Package nn is the numeric core of the search: the weight-sharing SuperNet of feed-forward
// ReLU networks, its child slices, the three task losses, gradients meant for sharded
// data-parallel training, and stand-alone training of one fixed architecture.
//
// Layout. The SuperNet keeps all weights in one flat []float32. Layer l has
// W_l (MaxIn_l × MaxOut_l, row-major, leading dimension MaxOut_l) followed by b_l (MaxOut_l).
// A child y uses the top-left y_{l}×y_{l+1} block of every W_l and the first y_{l+1} entries of
// b_l: the GEMMs read that block in place through the SuperNet's leading dimension, and
// gradients and Adam touch only it. The packed form of a slice (PackSlice) lists, layer by
// layer, the used rows of W_l then the used part of b_l; it is identical for every SuperNet
// that contains the child, so a packed slice moves between SuperNets of different maximum
// widths and to a Standalone network.
//
// Concurrency. Forward, Loss, Gradient, Predict and Evaluate only read the SuperNet, so any
// number of goroutines may call them at once, each with its own Workspace (and Grads).
// Apply and UnpackSlice write it.
//
// Allocation. A Workspace and Grads are sized once; the per-step paths do not allocate.
package nn
