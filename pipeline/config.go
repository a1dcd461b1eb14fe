package pipeline

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/internal/space"
	"github.com/tabnas/tabnas/schemas"
	"go.yaml.in/yaml/v3"
)

// RunConfig is everything a run can be told, by a YAML spec file or by flags (flags win).
type RunConfig struct {
	Data            string              `yaml:"data" json:"data"`
	Target          string              `yaml:"target" json:"target"`
	Task            string              `yaml:"task" json:"task,omitempty"`               // force regression, binary or multiclass
	Categorical     []string            `yaml:"categorical" json:"categorical,omitempty"` // columns forced categorical; ["*"] = every input
	Numeric         []string            `yaml:"numeric" json:"numeric,omitempty"`
	Ignore          []string            `yaml:"ignore" json:"ignore,omitempty"`
	Run             string              `yaml:"run" json:"run"`
	Store           string              `yaml:"store" json:"store"`
	Nats            string              `yaml:"nats" json:"nats"`
	Bus             string              `yaml:"bus" json:"bus,omitempty"` // memory, embedded or a nats:// URL
	Out             string              `yaml:"out" json:"out"`
	Layers          int                 `yaml:"layers" json:"layers"`
	Widths          []int               `yaml:"widths" json:"widths"`
	Constraints     schemas.Constraints `yaml:"constraints" json:"constraints"`
	Search          search.Config       `yaml:"search" json:"search"`
	SplitSeed       uint64              `yaml:"split_seed" json:"split_seed"`
	RowsPerShard    int                 `yaml:"rows_per_shard" json:"rows_per_shard"`
	CheckpointEvery int                 `yaml:"checkpoint_every" json:"checkpoint_every"`
	Evaluators      int                 `yaml:"evaluators" json:"evaluators"`
	Trial           schemas.Trial       `yaml:"trial" json:"trial"`
	Finish          schemas.Finish      `yaml:"finish" json:"finish"`
}

// LoadConfig reads a YAML run spec strictly: an unknown key is an error naming it.
func LoadConfig(path string) (RunConfig, error) {
	var c RunConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("run spec: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("run spec %s: %w", path, err)
	}
	return c, nil
}

// BusChoice is where a one-process run's services talk: the bus setting, else the NATS
// URL, else memory.
func (c *RunConfig) BusChoice() string {
	switch {
	case c.Bus != "":
		return c.Bus
	case c.Nats != "":
		return c.Nats
	}
	return BusMemory
}

// Validate names the bad field of a config before anything runs.
func (c *RunConfig) Validate() error {
	switch {
	case c.Data == "":
		return fmt.Errorf("data: missing (a CSV or Parquet file, s3://bucket/key, or dataset:PREFIX)")
	case c.Layers < 0 || c.Layers > 32:
		return fmt.Errorf("layers: %d out of range 1..32", c.Layers)
	case c.Evaluators < 0:
		return fmt.Errorf("evaluators: %d is negative", c.Evaluators)
	case c.RowsPerShard < 0:
		return fmt.Errorf("rows_per_shard: %d is negative", c.RowsPerShard)
	case c.CheckpointEvery < 0:
		return fmt.Errorf("checkpoint_every: %d is negative", c.CheckpointEvery)
	}
	if c.Bus != "" {
		if err := ValidBus(c.Bus); err != nil {
			return err
		}
	}
	switch c.Task {
	case "", schemas.TaskRegression, schemas.TaskBinary, schemas.TaskMulticlass:
	default:
		return fmt.Errorf("task: %q is not regression, binary or multiclass", c.Task)
	}
	if c.Run != "" {
		if err := schemas.ValidRunID(c.Run); err != nil {
			return fmt.Errorf("run: %w", err)
		}
	}
	if len(c.Widths) > 0 {
		if _, err := space.New(1, 1, 1, c.Widths); err != nil {
			return fmt.Errorf("widths: %w", err)
		}
	}
	if err := c.Constraints.Validate(); err != nil {
		return fmt.Errorf("constraints.%w", err)
	}
	if err := c.Search.Defaults().Validate(); err != nil {
		return fmt.Errorf("search: %w", err)
	}
	if c.Search.Steps < 0 {
		return fmt.Errorf("search.steps: %d is negative", c.Search.Steps)
	}
	t := c.Trial
	if t.Epochs < 0 || t.Batch < 0 || t.LR < 0 || t.Patience < 0 {
		return fmt.Errorf("trial: epochs, batch, lr and patience must not be negative (%+v)", t)
	}
	return nil
}

// ParseWidthList reads "8,16,32" or "8-16-32".
func ParseWidthList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '-' || r == ' ' })
	out := make([]int, len(f))
	for i, p := range f {
		v, err := strconv.Atoi(p)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("width %q is not a positive integer", p)
		}
		out[i] = v
	}
	return out, nil
}
