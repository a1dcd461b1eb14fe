package schemas

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/tabnas/tabnas/internal/nn"
)

func TestTrialRecipe(t *testing.T) {
	tr := Trial{Seed: 3, Epochs: 60, Batch: 256, LR: 1e-3, Patience: 10, Schedule: "plateau", MinLRFactor: 0.01,
		PlateauPatience: 3, PlateauFactor: 0.5, WeightDecay: 0.1, Refit: true}
	if err := tr.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"seed":3,"epochs":60,"batch":256,"lr":0.001,"patience":10,"schedule":"plateau","min_lr_factor":0.01,"plateau_patience":3,"plateau_factor":0.5,"weight_decay":0.1,"refit":true}`
	if string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
	var back Trial
	if err := json.Unmarshal(b, &back); err != nil || back != tr {
		t.Errorf("round trip %+v (%v)", back, err)
	}
	// The old encoding is unchanged: the new knobs are omitted when zero.
	if b, _ := json.Marshal(Trial{Seed: 1, Epochs: 60, Batch: 256, LR: 1e-3, Patience: 6}); string(b) != `{"seed":1,"epochs":60,"batch":256,"lr":0.001,"patience":6}` {
		t.Errorf("plain trial %s", b)
	}
	got := tr.TrainConfig()
	if !reflect.DeepEqual(got, nn.TrainConfig{Epochs: 60, BatchSize: 256, LR: 1e-3, Patience: 10, Seed: 3, Schedule: nn.SchedulePlateau,
		MinLRFactor: 0.01, PlateauPatience: 3, PlateauFactor: 0.5, WeightDecay: 0.1, Refit: true}) {
		t.Errorf("TrainConfig %+v", got)
	}
	if err := got.Check(); err != nil {
		t.Error(err)
	}
	for _, bad := range []func(*Trial){
		func(t *Trial) { t.Schedule = "linear" },
		func(t *Trial) { t.WeightDecay = math.NaN() },
		func(t *Trial) { t.PlateauFactor = 1 },
		func(t *Trial) { t.MinLRFactor = 1.5 },
		func(t *Trial) { t.PlateauPatience = -1 },
		func(t *Trial) { t.Patience = 0 },
	} {
		b := tr
		bad(&b)
		if err := b.Validate(); err == nil {
			t.Errorf("%+v accepted", b)
		}
		w := &WorkItem{Envelope: NewEnvelope(TypeWork, "nightly-42"), Kind: KindTrial, Arch: []int{8}, Trial: &b}
		if err := w.Validate(); err == nil || !strings.Contains(err.Error(), "trial") {
			t.Errorf("work item with %+v: %v", b, err)
		}
	}
}
