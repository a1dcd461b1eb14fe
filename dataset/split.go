package dataset

import "github.com/tabnas/tabnas/schemas"

// Split indexes, in schemas.SplitNames order.
const (
	Train = 0
	Val   = 1
	Test  = 2
)

// SplitOf returns the split (Train, Val or Test) of 0-based data row `row` under the
// splitmix64-v1 rule recorded in the manifest. It depends only on (seed, row), so the split is
// decided while streaming and can be recomputed later to find a source row in the shards.
func SplitOf(seed uint64, f schemas.Fractions, row int64) int {
	u := float64(splitmix64(splitmix64(seed)^uint64(row))>>11) * (1.0 / (1 << 53))
	switch {
	case u < f.Train:
		return Train
	case u < f.Train+f.Val:
		return Val
	default:
		return Test
	}
}

// splitmix64 is the finalizer of Steele et al.'s SplitMix64 generator (a bijective mix).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Locate maps a 0-based row of a split (its rank among that split's rows in source order) to
// the shard index and the row inside that shard, under round-robin dealing over n shards.
func Locate(rank int64, n int) (shard int, row int64) {
	return int(rank % int64(n)), rank / int64(n)
}
