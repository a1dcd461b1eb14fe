package schemas

import (
	"fmt"
	"math"

	"github.com/tabnas/tabnas/internal/nn"
)

// TrainConfig is the stand-alone trainer's configuration for these parameters.
func (t Trial) TrainConfig() nn.TrainConfig {
	return nn.TrainConfig{Epochs: t.Epochs, BatchSize: t.Batch, LR: t.LR, Patience: t.Patience, Seed: t.Seed,
		Schedule: t.Schedule, MinLRFactor: t.MinLRFactor, PlateauPatience: t.PlateauPatience, PlateauFactor: t.PlateauFactor,
		WeightDecay: t.WeightDecay, Refit: t.Refit}
}

// Validate reports trial parameters a stand-alone training cannot use.
func (t Trial) Validate() error {
	if t.Epochs < 1 || t.Batch < 1 || !(t.LR > 0) || math.IsInf(t.LR, 0) || t.Patience < 1 {
		return fmt.Errorf("trial %+v: epochs, batch, lr and patience must be positive", t)
	}
	switch t.Schedule {
	case "", "constant", "cosine", "plateau":
	default:
		return fmt.Errorf("trial schedule %q: want constant, cosine or plateau", t.Schedule)
	}
	for _, v := range []float64{t.MinLRFactor, t.PlateauFactor, t.WeightDecay} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("trial %+v: min_lr_factor, plateau_factor and weight_decay must be finite", t)
		}
	}
	if t.MinLRFactor > 1 || t.PlateauFactor >= 1 || t.PlateauPatience < 0 {
		return fmt.Errorf("trial %+v: min_lr_factor must be at most 1, plateau_factor below 1, plateau_patience not negative", t)
	}
	return nil
}
