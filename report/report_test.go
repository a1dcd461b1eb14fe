package report

import (
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/tabnas/tabnas/internal/search"
)

// checkCharts verifies that every chart of a page has the data of its input.
func checkCharts(t *testing.T, doc *html.Node, in Input) {
	t.Helper()
	rl, finiteRewards, finiteBase, finitePV := 0, 0, 0, 0
	for _, r := range in.History {
		if r.Warmup {
			continue
		}
		rl++
		if finite(r.Reward) {
			finiteRewards++
		}
		if finite(r.Baseline) {
			finiteBase++
		}
		if finite(r.PV) {
			finitePV++
		}
	}
	reward := one(t, doc, "svg", "chart-reward")
	if got := len(find(reward, "circle", "reward")) - 1; got != finiteRewards { // −1: the legend's dot
		t.Errorf("reward chart: %d points, want %d (RL steps with a finite reward)", got, finiteRewards)
	}
	if got := polyPoints(reward, "baseline"); got != finiteBase {
		t.Errorf("baseline polyline: %d points, want %d", got, finiteBase)
	}
	warmup := len(in.History) - rl
	// One shaded rect per run of warmup steps, plus the legend's.
	if warm := find(reward, "rect", "warmup"); (warmup > 0 && len(warm) < 2) || (warmup == 0 && len(warm) != 0) {
		t.Errorf("reward chart: %d warmup rects for %d warmup steps", len(warm), warmup)
	}
	if len(find(reward, "text", "ticklabel")) < 4 {
		t.Error("reward chart: too few tick labels")
	}

	maps := find(doc, "svg", "heatmap")
	if len(maps) != len(in.Space.Widths) {
		t.Fatalf("%d heatmaps for %d layers", len(maps), len(in.Space.Widths))
	}
	totalRows := 0
	for li, m := range maps {
		rows := find(m, "g", "hm-row")
		totalRows += len(rows)
		if len(rows) != len(in.Space.Widths[li]) {
			t.Errorf("layer %d heatmap: %d rows, want %d widths", li+1, len(rows), len(in.Space.Widths[li]))
		}
		for j, r := range rows {
			if w := attr(r, "data-width"); w != strconv.Itoa(in.Space.Widths[li][j]) {
				t.Errorf("layer %d row %d: width %s, want %d", li+1, j, w, in.Space.Widths[li][j])
			}
			cells := find(r, "rect", "cell")
			if len(in.History) > 0 && len(cells) == 0 {
				t.Errorf("layer %d width %s: no cells", li+1, attr(r, "data-width"))
			}
			if len(cells) > maxCols {
				t.Errorf("layer %d: %d cells in a row, more than %d columns", li+1, len(cells), maxCols)
			}
			// Cells (runs of equal color) tile the row, unless a probability was missing.
			if w := covered(t, cells); len(in.History) > 0 && !hasNaNProbs(in, li) && math.Abs(w-plotW) > 1 {
				t.Errorf("layer %d width %s: cells cover %.1f px of %.0f", li+1, attr(r, "data-width"), w, plotW)
			}
		}
		if len(find(m, "rect", "")) < colorLevels {
			t.Errorf("layer %d heatmap: no color scale", li+1)
		}
	}
	want := 0
	for _, ws := range in.Space.Widths {
		want += len(ws)
	}
	if totalRows != want {
		t.Errorf("heatmaps: %d rows in all, want %d (Σ widths per layer)", totalRows, want)
	}

	pv := one(t, doc, "svg", "chart-pv")
	if in.estimatesPV() {
		if got := polyPoints(pv, "pv"); got != finitePV {
			t.Errorf("P(V) line: %d points, want %d", got, finitePV)
		}
	} else if len(find(pv, "polyline", "pv")) != 0 {
		t.Error("P(V) drawn for a method that does not estimate it")
	}
	if got := polyPoints(pv, "accept"); got != rl {
		t.Errorf("acceptance line: %d points, want %d RL steps", got, rl)
	}

	sc := one(t, doc, "svg", "chart-trials")
	finiteTrials := 0
	for _, tr := range in.Trials {
		if finite(tr.ValLoss) {
			finiteTrials++
		}
	}
	if got := len(find(sc, "circle", "trial-val")) - 1; got != finiteTrials {
		t.Errorf("scatter: %d validation points, want %d", got, finiteTrials)
	}
	labels := textOf(sc)
	for _, tr := range in.Trials {
		if (finite(tr.ValLoss) || finite(tr.TestLoss)) && !strings.Contains(labels, tr.Arch) {
			t.Errorf("scatter: no label for %s", tr.Arch)
		}
	}
	if _, ok := in.budget(); ok != (len(find(sc, "line", "budget")) == 1) {
		t.Errorf("scatter: budget line present = %v, want %v", !ok, ok)
	}
	if len(in.Trials) > 0 {
		if got := len(find(one(t, doc, "table", "trials"), "tr", "")) - 1; got != len(in.Trials) {
			t.Errorf("trials table: %d rows, want %d", got, len(in.Trials))
		}
	}
	if len(in.Selection) > 0 {
		if got := len(find(one(t, doc, "table", "candidates"), "tr", "")) - 1; got != len(in.Selection) {
			t.Errorf("candidates table: %d rows, want %d", got, len(in.Selection))
		}
	}
	// Every chart has a title and tick labels.
	for _, s := range find(doc, "svg", "chart") {
		if len(find(s, "text", "charttitle")) != 1 {
			t.Errorf("chart %q has no title", attr(s, "class"))
		}
		if len(find(s, "text", "ticklabel")) < 3 {
			t.Errorf("chart %q has too few tick labels", attr(s, "class"))
		}
	}
}

// covered is the length of the union of the cells' x extents.
func covered(t *testing.T, cells []*html.Node) float64 {
	t.Helper()
	type seg struct{ a, b float64 }
	var segs []seg
	for _, c := range cells {
		x, err1 := strconv.ParseFloat(attr(c, "x"), 64)
		w, err2 := strconv.ParseFloat(attr(c, "width"), 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("cell x=%q width=%q", attr(c, "x"), attr(c, "width"))
		}
		segs = append(segs, seg{x, x + w})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].a < segs[j].a })
	var sum, end float64
	end = math.Inf(-1)
	for _, s := range segs {
		if s.a > end {
			sum += s.b - s.a
		} else if s.b > end {
			sum += s.b - end
		}
		end = math.Max(end, s.b)
	}
	return sum
}

func hasNaNProbs(in Input, layer int) bool {
	for _, r := range in.History {
		if layer >= len(r.Probs) {
			return true
		}
		for _, p := range r.Probs[layer] {
			if !finite(p) {
				return true
			}
		}
	}
	return false
}

// A report of a real short search on higgs: the page parses, every chart has its data, and
// the summary shows the chosen result against the budget.
func TestReportOfRealSearch(t *testing.T) {
	in := realInput(t)
	if len(in.History) != realSteps {
		t.Fatalf("%d records, want %d", len(in.History), realSteps)
	}
	rl := rlSteps(in.History)
	if rl == 0 || rl == realSteps {
		t.Fatalf("%d RL steps of %d: want warmup and RL steps", rl, realSteps)
	}
	page := render(t, in)
	doc := parse(t, page)
	checkCharts(t, doc, in)
	if got := len(find(one(t, doc, "svg", "chart-reward"), "circle", "reward")) - 1; got != rl {
		t.Errorf("reward points %d, want one per RL step (%d)", got, rl)
	}
	sum := textOf(one(t, doc, "table", "summary"))
	for _, want := range []string{in.Result.Arch, "of 6,000", "yes", "150 (37 warmup, 113 RL)", "accuracy", "higgs-smoke-7", "2026-01-02T03:04:05Z"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	if !strings.Contains(textOf(doc), "params ≤ 6000") {
		t.Error("constraint not shown")
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "http://") && !strings.Contains(page, `xmlns="http://www.w3.org/2000/svg"`) {
		t.Error("page is not self-contained")
	}
	for _, tag := range []string{"link", "img", "script", "iframe"} {
		if n := len(find(doc, tag, "")); n > 0 {
			t.Errorf("page has %d <%s> elements; it must be self-contained", n, tag)
		}
	}
	if dir := os.Getenv("TABNAS_REPORT_OUT"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "report.html"), []byte(page), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("report of %d steps (%d RL), result %s: %d bytes", len(in.History), rl, in.Result.Arch, len(page))
}

// Text from the input is escaped: a run id with a script tag renders inert.
func TestReportEscapesText(t *testing.T) {
	in := synthetic(40, 10)
	evil := `<script>alert("x")</script>`
	in.RunID = evil
	in.Dataset = `a & b "quoted" 'single'`
	in.Task = "<i>binary</i>"
	in.Trials[0].Arch = "<b>16-8</b>"
	in.Trials[0].MetricName = "<u>acc</u>"
	in.Selection[0].Arch = "<b>16-8</b>"
	in.Constraints[0].Text = "params <= 700 <em>"
	in.Config = append(in.Config, KV{"<k>", "</td><script>x()</script>"})
	in.Timings[0].Name = "<blink>search"
	in.Method = "<img src=x onerror=alert(1)>"
	page := render(t, in)
	doc := parse(t, page)
	for _, tag := range []string{"script", "b", "i", "u", "em", "k", "blink", "img"} {
		if n := len(find(doc, tag, "")); n > 0 {
			t.Errorf("input text became %d <%s> elements", n, tag)
		}
	}
	txt := textOf(doc)
	for _, want := range []string{evil, `a & b "quoted" 'single'`, "<b>16-8</b>", "params <= 700 <em>", "</td><script>x()</script>"} {
		if !strings.Contains(txt, want) {
			t.Errorf("text %q not shown literally", want)
		}
	}
	if title := textOf(one(t, one(t, doc, "head", ""), "title", "")); !strings.Contains(title, evil) {
		t.Errorf("title %q lacks the literal run id", title)
	}
}

// Edge cases render a well-formed page whose charts match their data.
func TestReportEdgeCases(t *testing.T) {
	cases := map[string]func() Input{
		"empty":       func() Input { return Input{} },
		"all warmup":  func() Input { return synthetic(20, 20) },
		"single step": func() Input { return synthetic(1, 0) },
		"single warmup step": func() Input {
			return synthetic(1, 1)
		},
		"no warmup": func() Input { return synthetic(30, 0) },
		"nan values": func() Input {
			in := synthetic(60, 10)
			for i := range in.History {
				r := &in.History[i]
				if i%7 == 3 {
					r.Reward, r.Baseline, r.PV = math.NaN(), math.NaN(), math.NaN()
				}
				if i%11 == 5 {
					r.Probs[0][2] = math.NaN()
					r.Reward = math.Inf(1)
				}
				if i == 40 {
					r.Probs = nil // omitted
				}
			}
			in.Trials[0].ValLoss = math.NaN()
			in.Trials[1].TestLoss = math.Inf(1)
			in.Selection[0].Prob = math.NaN()
			in.Constraints[0].Limit = math.NaN()
			return in
		},
		"one trial": func() Input {
			in := synthetic(50, 12)
			in.Trials = in.Trials[1:]
			return in
		},
		"no trials": func() Input {
			in := synthetic(50, 12)
			in.Trials, in.Result = nil, nil
			return in
		},
		"regression": func() Input {
			in := synthetic(80, 20)
			in.Task = "regression"
			for i := range in.History {
				if !in.History[i].Warmup {
					in.History[i].Reward = 1 - 5*float64(i%9) // negative rewards, 1 − MSE
				}
			}
			for i := range in.Trials {
				in.Trials[i].MetricName, in.Trials[i].Metric = "rmse", 0.8
				in.Trials[i].ValLoss, in.Trials[i].TestLoss = 0.64+float64(i), 0.7+float64(i)
			}
			in.Result = &Result{Trial: in.Trials[0], Feasible: true}
			return in
		},
		"multiclass": func() Input {
			in := synthetic(30, 5)
			in.Task = "multiclass(10)"
			return in
		},
		"many steps": func() Input { return synthetic(2345, 586) },
		"outliers": func() Input {
			in := synthetic(300, 50)
			in.History[100].Reward = -1e6
			in.History[200].Reward = 1e6
			return in
		},
		"no constraints, reject method": func() Input {
			in := synthetic(40, 10)
			in.Constraints, in.Method = nil, "reject"
			return in
		},
		"infeasible result": func() Input {
			in := synthetic(40, 10)
			in.Method = "abs"
			in.Trials[1].Params = 900
			in.Result.Params, in.Result.Feasible = 900, false
			return in
		},
		"selection without trials": func() Input {
			in := synthetic(40, 10)
			in.Trials, in.Result = nil, nil
			return in
		},
		"same params and loss": func() Input {
			in := synthetic(40, 10)
			in.Trials[0].Params, in.Trials[0].ValLoss, in.Trials[0].TestLoss = 489, 0.5, 0.53
			in.Constraints = nil
			return in
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			in := mk()
			page := render(t, in)
			if dir := os.Getenv("TABNAS_REPORT_OUT"); dir != "" {
				file := "edge-" + strings.NewReplacer(" ", "-", ",", "").Replace(name) + ".html"
				if err := os.WriteFile(filepath.Join(dir, file), []byte(page), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			doc := parse(t, page)
			checkCharts(t, doc, in)
			txt := textOf(doc)
			switch name {
			case "all warmup", "single warmup step":
				if !strings.Contains(txt, "no RL steps") {
					t.Error("all-warmup run does not say there were no RL steps")
				}
			case "regression":
				if !strings.Contains(txt, "loss (MSE)") || !strings.Contains(txt, "test rmse") {
					t.Error("regression page does not name MSE and the metric")
				}
			case "multiclass":
				if !strings.Contains(txt, "log loss") {
					t.Error("classification page does not name the log loss")
				}
			case "outliers":
				if !strings.Contains(txt, "2 outlying rewards drawn at the edge") {
					t.Error("outliers not reported")
				}
			case "no constraints, reject method":
				if !strings.Contains(txt, "does not estimate P(V)") {
					t.Error("missing P(V) not explained")
				}
			case "infeasible result":
				if cell := find(one(t, doc, "table", "summary"), "td", "bad"); len(cell) != 1 || textOf(cell[0]) != "no" {
					t.Error("infeasible result not flagged")
				}
			case "selection without trials":
				if !strings.Contains(txt, "16-8 (most probable, not retrained)") {
					t.Error("selection not shown as the result")
				}
			}
		})
	}
}

// The heatmap averages steps into at most 400 columns.
func TestHeatmapDownsamples(t *testing.T) {
	for _, n := range []int{1, 399, 400, 401, 1000, 4321} {
		bs := bins(n)
		if len(bs) != min(n, maxCols) {
			t.Fatalf("%d steps: %d bins", n, len(bs))
		}
		next := 0
		for _, b := range bs {
			if b[0] != next || b[1] <= b[0] {
				t.Fatalf("%d steps: bad bin %v after %d", n, b, next)
			}
			next = b[1]
		}
		if next != n {
			t.Fatalf("%d steps: bins end at %d", n, next)
		}
	}
}

func TestTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi  float64
		integer bool
		want    string
	}{
		{0, 1, false, "0 0.2 0.4 0.6 0.8 1"},
		{0, 1, true, "0 1"},
		{0, 150, true, "0 25 50 75 100 125 150"},
		{0, 15, true, "0 5 10 15"},
		{0, 15, false, "0 2.5 5 7.5 10 12.5 15"},
		{300, 2200, true, "500 1000 1500 2000"},
		{10000, 50000, true, "10k 20k 30k 40k 50k"},
		{0.41, 0.47, false, "0.41 0.42 0.43 0.44 0.45 0.46 0.47"},
		{-40, 1, false, "-40 -30 -20 -10 0"},
	} {
		ticks, step := ticksIn(c.lo, c.hi, 6, c.integer)
		var got []string
		for _, v := range ticks {
			got = append(got, tickLabel(v, step))
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("ticks of [%g, %g]: %q, want %q", c.lo, c.hi, strings.Join(got, " "), c.want)
		}
	}
	if got := fmtInt(41153); got != "41,153" {
		t.Errorf("fmtInt: %s", got)
	}
	if got := fmtInt(-1234567); got != "-1,234,567" {
		t.Errorf("fmtInt: %s", got)
	}
}

// FromEngine and ConfigKV describe a search configuration.
func TestConfigKV(t *testing.T) {
	kv := ConfigKV(search.Config{Steps: 100})
	m := map[string]string{}
	for _, e := range kv {
		m[e.Key] = e.Value
	}
	for k, want := range map[string]string{"method": "tabnas", "steps": "100", "warmup": "0.25 (25 steps)", "correction": "auto", "mc_samples": "256", "top_k": "3", "reward": "fixed", "children": "feasible"} {
		if m[k] != want {
			t.Errorf("%s = %q, want %q", k, m[k], want)
		}
	}
}

func TestWriteNilWriter(t *testing.T) {
	if err := Write(nil, Input{}); err == nil {
		t.Fatal("no error for a nil writer")
	}
}

// The proxy check is drawn as a scatter of proxy against stand-alone loss, one circle per
// checked architecture, with its τ and the note; a run without it has no such section.
func TestReportProxyCheck(t *testing.T) {
	in := synthetic(40, 10)
	if doc := parse(t, render(t, in)); len(find(doc, "svg", "chart-proxy")) != 0 {
		t.Fatal("proxy chart drawn without a proxy check")
	}
	in.Proxy = &Proxy{KendallTau: Measured(0.5), Spearman: Measured(0.6), RungTau: Measured(0.1), Note: "the shared-weight score ranked architectures poorly here",
		Points: []ProxyPoint{{"8-8-8", "uniform", 0.7, 0.5}, {"64-64-64", "top", 0.6, 0.45}, {"32-32-32", "top", 0.65, 0.47}}}
	page := render(t, in)
	doc := parse(t, page)
	svg := one(t, doc, "svg", "chart-proxy")
	if n := len(find(svg, "circle", "proxy-top")) + len(find(svg, "circle", "proxy-uniform")); n != 3+2 { // 3 points + 2 legend dots
		t.Errorf("%d proxy circles, want 5 (3 points, 2 legend)", n)
	}
	for _, want := range []string{"Kendall τ 0.50", "Spearman ρ 0.60", "ranked architectures poorly"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
