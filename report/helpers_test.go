package report

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/tabnas/tabnas/internal/nn"
	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/internal/space"
)

// higgsPath is the shared higgs subset, laid beside the repository.
const higgsPath = "../../shared/datasets/higgs/higgs_26k.csv.gz"

// loadHiggs reads up to limit rows of the higgs subset (28 numeric features, binary target
// last), standardizes with training statistics and splits rows 80/10/10 by index.
func loadHiggs(limit int) (train, val, test nn.Data, err error) {
	f, err := os.Open(higgsPath)
	if err != nil {
		return train, val, test, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return train, val, test, err
	}
	sc := bufio.NewScanner(gz)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sc.Scan() // header
	var rows [][]float64
	for sc.Scan() && (limit == 0 || len(rows) < limit) {
		parts := strings.Split(sc.Text(), ",")
		r := make([]float64, len(parts))
		for i, p := range parts {
			if r[i], err = strconv.ParseFloat(p, 64); err != nil {
				return train, val, test, err
			}
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		return train, val, test, err
	}
	if len(rows) < 100 {
		return train, val, test, errors.New("higgs: too few rows")
	}
	cols := len(rows[0]) - 1
	mean, sd := make([]float64, cols), make([]float64, cols)
	n := 0
	for i, r := range rows {
		if i%10 < 8 {
			n++
			for j := 0; j < cols; j++ {
				mean[j] += r[j]
			}
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	for i, r := range rows {
		if i%10 < 8 {
			for j := 0; j < cols; j++ {
				d := r[j] - mean[j]
				sd[j] += d * d
			}
		}
	}
	for j := range sd {
		sd[j] = math.Sqrt(sd[j]/float64(n)) + 1e-12
	}
	put := func(d *nn.Data, r []float64) {
		for j := 0; j < cols; j++ {
			d.X = append(d.X, float32((r[j]-mean[j])/sd[j]))
		}
		d.Y = append(d.Y, float32(r[cols]))
	}
	train.Cols, val.Cols, test.Cols = cols, cols, cols
	for i, r := range rows {
		switch i % 10 {
		case 8:
			put(&val, r)
		case 9:
			put(&test, r)
		default:
			put(&train, r)
		}
	}
	return train, val, test, nil
}

func shardsOf(d nn.Data, n int) []search.Shard {
	rows := d.Rows()
	var out []search.Shard
	for s := 0; s < n; s++ {
		lo, hi := s*rows/n, (s+1)*rows/n
		out = append(out, search.Shard{X: d.X[lo*d.Cols : hi*d.Cols], Y: d.Y[lo:hi], Rows: hi - lo})
	}
	return out
}

const (
	realSteps  = 150
	realBudget = 6000
)

var (
	realOnce sync.Once
	realIn   Input
	realErr  error
)

// realInput runs a short real search on higgs (once per test binary), retrains its top-3
// stand-alone and builds the report input from it. It skips loudly when the data is absent.
func realInput(t *testing.T) Input {
	t.Helper()
	realOnce.Do(func() { realIn, realErr = runRealSearch() })
	if errors.Is(realErr, os.ErrNotExist) {
		t.Skipf("SKIPPED: shared datasets not laid beside the repository (%s): %v", higgsPath, realErr)
	}
	if realErr != nil {
		t.Fatal(realErr)
	}
	return realIn
}

func runRealSearch() (Input, error) {
	start := time.Now()
	train, val, test, err := loadHiggs(8000)
	if err != nil {
		return Input{}, err
	}
	task := nn.BinaryTask()
	s, err := space.New(train.Cols, task.Outputs(), 3, space.DefaultWidths)
	if err != nil {
		return Input{}, err
	}
	cons := space.Constraints{space.MaxParams{Max: realBudget}}
	cfg := search.Config{Steps: realSteps, Seed: 7, Batch: 128, ValBatch: 512, TopK: 3}.Defaults()
	net, err := nn.NewSuperNet(s.In, s.MaxWidths(), task, rand.New(rand.NewPCG(cfg.Seed, 11)))
	if err != nil {
		return Input{}, err
	}
	b, err := search.NewLocal(net, shardsOf(train, 2), shardsOf(val, 1), cfg)
	if err != nil {
		return Input{}, err
	}
	e, err := search.New(cfg, s, cons, net, b, &search.LocalEstimator{Space: s, Cons: cons, Cfg: cfg.Policy, Seed: cfg.Seed})
	if err != nil {
		return Input{}, err
	}
	ctx := context.Background()
	if err := e.Run(ctx, nil); err != nil {
		return Input{}, err
	}
	sel, err := e.Select(ctx)
	if err != nil {
		return Input{}, err
	}
	searchTime := time.Since(start)
	in := FromEngine(e, sel)
	in.RunID, in.Dataset, in.Task = "higgs-smoke-7", "higgs (8k rows)", task.String()
	in.Created = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rstart := time.Now()
	for i, c := range sel.Candidates {
		t0 := time.Now()
		m, h, err := nn.TrainStandalone(nn.Arch(c.Widths), task, train, val, nn.TrainConfig{Epochs: 4, Patience: 2, Seed: uint64(i + 1)})
		if err != nil {
			return Input{}, err
		}
		ev := m.Evaluate(test, m.NewWorkspace(1024))
		tr := Trial{Arch: c.Arch, Params: c.Params, ValLoss: h.BestValLoss, TestLoss: ev.Loss,
			MetricName: "accuracy", Metric: ev.Accuracy, Epochs: len(h.Epochs), Seconds: time.Since(t0).Seconds()}
		in.Trials = append(in.Trials, tr)
		if in.Result == nil || tr.ValLoss < in.Result.ValLoss {
			in.Result = &Result{Trial: tr, Feasible: c.Feasible}
		}
	}
	in.Timings = []Timing{{"search", searchTime}, {"retraining", time.Since(rstart)}}
	return in, nil
}

// render writes the report and returns its text.
func render(t *testing.T, in Input) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, in); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// parse parses the page as HTML and every inline SVG strictly as XML.
func parse(t *testing.T, page string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatalf("page does not parse as HTML: %v", err)
	}
	rest := page
	for {
		i := strings.Index(rest, "<svg")
		if i < 0 {
			break
		}
		j := strings.Index(rest[i:], "</svg>")
		if j < 0 {
			t.Fatal("unterminated <svg>")
		}
		part := rest[i : i+j+len("</svg>")]
		d := xml.NewDecoder(strings.NewReader(part))
		d.Strict = true
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("SVG is not well-formed XML: %v\n%.300s", err, part)
			}
			if se, ok := tok.(xml.StartElement); ok {
				for _, a := range se.Attr {
					if strings.Contains(a.Value, "NaN") || strings.Contains(a.Value, "Inf") {
						t.Fatalf("non-finite value in <%s %s=%q>", se.Name.Local, a.Name.Local, a.Value)
					}
				}
			}
		}
		rest = rest[i+j:]
	}
	return doc
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	for _, c := range strings.Fields(attr(n, "class")) {
		if c == class {
			return true
		}
	}
	return false
}

// find returns the elements under n with the tag (any when empty) and class (any when empty).
func find(n *html.Node, tag, class string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(c *html.Node) {
		if c.Type == html.ElementNode && (tag == "" || c.Data == tag) && (class == "" || hasClass(c, class)) {
			out = append(out, c)
		}
		for k := c.FirstChild; k != nil; k = k.NextSibling {
			walk(k)
		}
	}
	walk(n)
	return out
}

// one returns the single element with tag and class.
func one(t *testing.T, n *html.Node, tag, class string) *html.Node {
	t.Helper()
	got := find(n, tag, class)
	if len(got) != 1 {
		t.Fatalf("want one <%s class=%q>, got %d", tag, class, len(got))
	}
	return got[0]
}

// polyPoints counts the points of the polylines of a class under n.
func polyPoints(n *html.Node, class string) int {
	k := 0
	for _, p := range find(n, "polyline", class) {
		k += len(strings.Fields(attr(p, "points")))
	}
	return k
}

func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(c *html.Node) {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
		for k := c.FirstChild; k != nil; k = k.NextSibling {
			walk(k)
		}
	}
	walk(n)
	return b.String()
}

// synthetic builds an input without running a search: steps records (the first warm of
// them warmup) over a 2-layer space, with a smoothly concentrating policy.
func synthetic(steps, warm int) Input {
	s := space.Space{In: 10, Out: 1, Widths: [][]int{{8, 16, 32, 64}, {4, 8, 12}}}
	in := Input{
		RunID: "synthetic", Dataset: "toy", Task: "binary", Seed: 1, Space: s,
		Constraints: []Constraint{{Name: "params", Limit: 700, Text: "params ≤ 700"}},
		Config:      []KV{{"steps", strconv.Itoa(steps)}},
	}
	for t := 0; t < steps; t++ {
		r := search.Record{Step: int64(t), Warmup: t < warm, Child: "8-4"}
		if !r.Warmup {
			r.Candidate, r.Tries = "16-8", 1+t%3
			r.ValLoss = 0.7 - 0.2*float64(t)/float64(steps)
			r.Reward = 1 - r.ValLoss + 0.05*math.Sin(float64(t))
			r.Baseline = 1 - r.ValLoss
			r.PV = float64(t%5) / 4
		}
		f := float64(t+1) / float64(steps)
		for _, ws := range s.Widths {
			p := make([]float64, len(ws))
			for j := range p {
				p[j] = (1 - f) / float64(len(ws))
			}
			p[1] += f
			r.Probs = append(r.Probs, p)
		}
		in.History = append(in.History, r)
	}
	in.Selection = []search.Candidate{{Arch: "16-8", Params: 321, Prob: 0.6, Feasible: true}, {Arch: "32-4", Params: 489, Prob: 0.1, Feasible: true}}
	in.Trials = []Trial{
		{Arch: "16-8", Params: 321, ValLoss: 0.52, TestLoss: 0.55, MetricName: "accuracy", Metric: 0.74, Epochs: 12, Seconds: 1.5},
		{Arch: "32-4", Params: 489, ValLoss: 0.5, TestLoss: 0.53, MetricName: "accuracy", Metric: 0.75, Epochs: 9, Seconds: 1.1},
	}
	in.Result = &Result{Trial: in.Trials[1], Feasible: true}
	in.Timings = []Timing{{"search", 3 * time.Second}, {"retraining", 2600 * time.Millisecond}}
	return in
}
