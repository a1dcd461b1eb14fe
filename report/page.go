package report

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"time"
)

// row is one line of a key/value table; Class marks good or bad values.
type row struct {
	Key, Value, Class string
}

type layerRow struct {
	Layer   int
	Choices int
	Widths  string
}

type candRow struct {
	Rank                      int
	Arch, Params, Share, Prob string
	Feasible                  bool
}

type trialRow struct {
	Arch, Params, Val, Test, Metric, Epochs, Seconds string
	Chosen                                           bool
}

// page is the view model of the template: every value is a plain string or escaped SVG.
type page struct {
	Title       string
	RunID       string
	Sub         string
	Summary     []row
	Layers      []layerRow
	SpaceText   string
	Constraints []string
	Config      []KV
	Candidates  []candRow
	Trials      []trialRow
	MetricName  string
	LossName    string
	Timings     []row
	Reward      template.HTML
	Heatmaps    []template.HTML
	ProbTop     float64
	ProbMissing bool
	PV          template.HTML
	Scatter     template.HTML
	ProxyChart  template.HTML
	ProxyText   string
	Window      int
	PVNote      string
}

func build(in Input) page {
	pg := page{
		Title:    "tabnas run " + in.RunID,
		RunID:    in.RunID,
		LossName: in.lossName(),
		Config:   in.Config,
	}
	if in.RunID == "" {
		pg.Title = "tabnas run"
	}
	sub := in.Dataset
	if in.Task != "" {
		if sub != "" {
			sub += " · "
		}
		sub += in.Task
	}
	pg.Sub = sub
	budget, hasBudget := in.budget()
	share := func(params int64) string {
		if !hasBudget || budget <= 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f %%", 100*float64(params)/budget)
	}

	// Summary.
	add := func(k, v, class string) { pg.Summary = append(pg.Summary, row{k, v, class}) }
	add("run", orDash(in.RunID), "")
	add("dataset", orDash(in.Dataset), "")
	add("task", orDash(in.Task), "")
	method := in.Method
	if method == "" {
		method = "tabnas"
	}
	add("method", method, "")
	switch {
	case in.Result != nil:
		r := in.Result
		add("result", r.Arch, "strong")
		add("params", paramsVsBudget(r.Params, budget, hasBudget), "")
		add("feasible", yesNo(r.Feasible), okClass(r.Feasible))
		add("validation loss", fmtNum(r.ValLoss), "")
		add("test loss", fmtNum(r.TestLoss), "")
		if r.MetricName != "" {
			add("test "+r.MetricName, fmtNum(r.Metric), "")
		}
	case len(in.Selection) > 0:
		c := in.Selection[0]
		add("result", c.Arch+" (most probable, not retrained)", "strong")
		add("params", paramsVsBudget(c.Params, budget, hasBudget), "")
		add("feasible", yesNo(c.Feasible), okClass(c.Feasible))
	default:
		add("result", "— (no result)", "bad")
	}
	for _, c := range in.Constraints {
		pg.Constraints = append(pg.Constraints, c.label())
	}
	if len(pg.Constraints) > 0 {
		add("constraints", joinAnd(pg.Constraints), "")
	} else {
		add("constraints", "none", "")
	}
	nrl := rlSteps(in.History)
	add("steps", fmt.Sprintf("%d (%d warmup, %d RL)", len(in.History), len(in.History)-nrl, nrl), "")
	if nrl > 0 {
		tries := 0
		for _, r := range in.History {
			if !r.Warmup {
				tries += r.Tries
			}
		}
		add("draws per RL step", fmt.Sprintf("%.2f (mean; %d rejected in all)", float64(tries)/float64(nrl), max(0, tries-nrl)), "")
	}
	add("seed", strconv.FormatUint(in.Seed, 10), "")
	wall := in.Wall
	if wall == 0 {
		for _, t := range in.Timings {
			wall += t.Duration
		}
	}
	add("wall-clock", fmtDur(wall), "")
	if !in.Created.IsZero() {
		add("created", in.Created.UTC().Format(time.RFC3339), "")
	}

	// Space.
	for i, ws := range in.Space.Widths {
		pg.Layers = append(pg.Layers, layerRow{i + 1, len(ws), joinWidths(ws)})
	}
	pg.SpaceText = fmt.Sprintf("input width %d, output width %d, %d hidden layers, %s architectures",
		in.Space.In, in.Space.Out, len(in.Space.Widths), fmtInt(spaceSize(in.Space.Widths)))

	// Tables.
	for i, c := range in.Selection {
		pg.Candidates = append(pg.Candidates, candRow{i + 1, c.Arch, fmtInt(c.Params), share(c.Params), fmtProb(c.Prob), c.Feasible})
	}
	chosen := ""
	if in.Result != nil {
		chosen = in.Result.Arch
	}
	for _, t := range in.Trials {
		if pg.MetricName == "" {
			pg.MetricName = t.MetricName
		}
		pg.Trials = append(pg.Trials, trialRow{
			Arch: t.Arch, Params: fmtInt(t.Params), Val: fmtNum(t.ValLoss), Test: fmtNum(t.TestLoss),
			Metric: fmtNum(t.Metric), Epochs: strconv.Itoa(t.Epochs), Seconds: fmtSeconds(t.Seconds),
			Chosen: t.Arch == chosen,
		})
	}
	if pg.MetricName == "" {
		pg.MetricName = "metric"
	}
	for _, t := range in.Timings {
		pg.Timings = append(pg.Timings, row{t.Name, fmtDur(t.Duration), ""})
	}

	// Charts.
	pg.Window = smoothingWindow(nrl)
	pg.Reward = rewardChart(in)
	pg.Heatmaps, pg.ProbTop, pg.ProbMissing = heatmaps(in)
	pg.PV = feasibilityChart(in)
	pg.Scatter = scatterChart(in)
	pg.ProxyChart = proxyChart(in)
	if pr := in.Proxy; pr != nil {
		pg.ProxyText = fmt.Sprintf("Rank correlation of the shared-weight score with stand-alone training: Kendall τ %s, Spearman ρ %s over the checked architectures; τ %s over the finish's first rung.",
			fmtTau(pr.KendallTau), fmtTau(pr.Spearman), fmtTau(pr.RungTau))
		if pr.Note != "" {
			pg.ProxyText += " " + pr.Note + "."
		}
	}
	if !in.estimatesPV() {
		pg.PVNote = "Method " + in.Method + " does not estimate P(V); only the acceptance rate is drawn."
	}
	return pg
}

func fmtSeconds(s float64) string {
	if finite(s) && s < 10 {
		return fmt.Sprintf("%.2f", s)
	}
	return fmt.Sprintf("%.1f", s)
}

func spaceSize(ws [][]int) int64 {
	n := int64(1)
	for _, w := range ws {
		if len(w) == 0 {
			return 0
		}
		if n > math.MaxInt64/int64(len(w)) {
			return math.MaxInt64
		}
		n *= int64(len(w))
	}
	return n
}

func paramsVsBudget(p int64, budget float64, ok bool) string {
	if !ok {
		return fmtInt(p)
	}
	return fmt.Sprintf("%s of %s (%.1f %%)", fmtInt(p), fmtInt(int64(budget)), 100*float64(p)/budget)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func okClass(b bool) string {
	if b {
		return "good"
	}
	return "bad"
}

func joinAnd(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " AND "
		}
		out += x
	}
	return out
}

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
:root{color-scheme:light}
body{font-family:"DejaVu Sans",system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1b1f24;background:#fafafa;margin:0;line-height:1.4}
main{max-width:1000px;margin:0 auto;padding:20px 24px 60px;background:#fff}
h1{font-size:22px;margin:6px 0 2px;word-break:break-all}
h2{font-size:17px;margin:30px 0 8px;padding-bottom:4px;border-bottom:1px solid #ddd}
p.sub{color:#555;margin:0 0 14px}
p.caption{color:#555;font-size:13px;margin:2px 0 10px}
table{border-collapse:collapse;font-size:13px;margin:6px 0 10px}
th,td{padding:4px 10px;text-align:left;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f3f4f6;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{background:none;color:#555;font-weight:normal;width:180px}
td.strong{font-weight:700}
td.good{color:#1a7f37;font-weight:600}
td.bad{color:#cf222e;font-weight:600}
tr.chosen td{background:#eaf5ea}
span.badge{display:inline-block;font-size:11px;padding:0 6px;border-radius:8px;background:#2ca02c;color:#fff;margin-left:6px}
code{font-family:"DejaVu Sans Mono",ui-monospace,monospace;font-size:12px}
figure{margin:8px 0 14px}
svg.chart{display:block;width:100%;height:auto;max-width:960px}
svg text{font-family:"DejaVu Sans",system-ui,sans-serif;fill:#333}
.plotbg{fill:#fff}
.frame{fill:none;stroke:#999;stroke-width:1}
.grid{stroke:#ececec;stroke-width:1}
.tick{stroke:#999;stroke-width:1}
.ticklabel{font-size:11px;fill:#444}
.axislabel{font-size:12px;fill:#222}
.charttitle{font-size:14px;font-weight:bold;fill:#111}
.legendlabel{font-size:11px;fill:#333}
.note{font-size:13px;fill:#777}
.note.small{font-size:11px}
.warmup{fill:#f4ead0;fill-opacity:.7}
.warmuplabel{font-size:11px;fill:#8a6d1f}
.warmupline{stroke:#fff;stroke-width:1.5;stroke-dasharray:4 3}
.reward{fill:#1f77b4;fill-opacity:.3}
.reward.clipped{fill:#d62728;fill-opacity:.6}
.baseline{fill:none;stroke:#d62728;stroke-width:2}
.pvraw{fill:#1f77b4;fill-opacity:.22}
.pv{fill:none;stroke:#1f77b4;stroke-width:2}
.accept{fill:none;stroke:#ff7f0e;stroke-width:2;stroke-dasharray:7 4}
.baseline-dot{fill:#d62728}
.pv-dot{fill:#1f77b4}
.accept-dot{fill:#ff7f0e}
.cell{shape-rendering:crispEdges}
.chosen-marker{fill:#d62728}
.budget{stroke:#d62728;stroke-width:1.5;stroke-dasharray:6 4}
.budgetlabel{font-size:11px;fill:#d62728}
.pair{stroke:#bbb;stroke-width:1}
.trial-val{fill:#1f77b4}
.proxy-top{fill:#d62728}
.proxy-uniform{fill:#7f7f7f}
.trial-test{fill:#fff;stroke:#ff7f0e;stroke-width:1.5}
.chosen-ring{fill:none;stroke:#2ca02c;stroke-width:2}
.pointlabel{font-size:11px;fill:#222}
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
{{with .Sub}}<p class="sub">{{.}}</p>{{end}}

<h2 id="summary">Summary</h2>
<table class="kv summary">
{{range .Summary}}<tr><th>{{.Key}}</th><td{{with .Class}} class="{{.}}"{{end}}>{{.Value}}</td></tr>
{{end}}</table>

<h2 id="reward">Reward and baseline</h2>
<p class="caption">Each point is the reward of the candidate scored at one RL step; the line is the baseline it is compared with (the advantage is their difference). Shaded: layer warmup, when no RL update is made.</p>
<figure>{{.Reward}}</figure>

<h2 id="probs">Width probabilities per layer</h2>
<p class="caption">Probability of each width choice after every step (columns average consecutive steps when there are more than 400). Colors span 0 to {{.ProbTop}}{{if lt .ProbTop 1.0}}, the smallest round value above every probability of the run{{end}}. The red mark at the right edge is the width of the chosen architecture.{{if .ProbMissing}} Steps without a recorded probability are averaged over the others; white cells have none at all.{{end}}</p>
{{range .Heatmaps}}<figure>{{.}}</figure>
{{else}}<p class="caption">The space has no layers.</p>
{{end}}

<h2 id="feasibility">Feasibility</h2>
<p class="caption">P̂(V) is the estimated probability that the controller samples a feasible architecture; the acceptance rate is 1/draws of the rejection sampler at each RL step. {{if eq .Window 1}}Lines join the values of consecutive RL steps.{{else}}Lines are trailing means over {{.Window}} RL steps.{{end}}{{with .PVNote}} {{.}}{{end}}</p>
<figure>{{.PV}}</figure>

<h2 id="trials">Retrained candidates</h2>
<p class="caption">Each candidate of the final selection trained stand-alone from scratch with early stopping; filled circles are validation losses, squares test losses. The dashed line is the parameter budget.</p>
<figure>{{.Scatter}}</figure>
{{if .Trials}}<table class="trials">
<tr><th>arch</th><th class="num">params</th><th class="num">val loss ({{.LossName}})</th><th class="num">test loss</th><th class="num">test {{.MetricName}}</th><th class="num">epochs</th><th class="num">seconds</th></tr>
{{range .Trials}}<tr{{if .Chosen}} class="chosen"{{end}}><td><code>{{.Arch}}</code>{{if .Chosen}}<span class="badge">chosen</span>{{end}}</td><td class="num">{{.Params}}</td><td class="num">{{.Val}}</td><td class="num">{{.Test}}</td><td class="num">{{.Metric}}</td><td class="num">{{.Epochs}}</td><td class="num">{{.Seconds}}</td></tr>
{{end}}</table>
{{else}}<p class="caption">No candidate was retrained.</p>
{{end}}

{{if .ProxyText}}<h2 id="proxy">Proxy check</h2>
<p class="caption">{{.ProxyText}}</p>
{{with .ProxyChart}}<figure>{{.}}</figure>{{end}}
{{end}}
<h2 id="selection">Top-k candidates of the search</h2>
{{if .Candidates}}<table class="candidates">
<tr><th class="num">#</th><th>arch</th><th class="num">params</th><th class="num">of budget</th><th class="num">p(y)</th><th>feasible</th></tr>
{{range .Candidates}}<tr><td class="num">{{.Rank}}</td><td><code>{{.Arch}}</code></td><td class="num">{{.Params}}</td><td class="num">{{.Share}}</td><td class="num">{{.Prob}}</td><td class="{{if .Feasible}}good{{else}}bad{{end}}">{{if .Feasible}}yes{{else}}no{{end}}</td></tr>
{{end}}</table>
{{else}}<p class="caption">No selection recorded.</p>
{{end}}

<h2 id="space">Search space and constraints</h2>
<p class="caption">{{.SpaceText}}</p>
<table class="space">
<tr><th class="num">layer</th><th class="num">choices</th><th>widths</th></tr>
{{range .Layers}}<tr><td class="num">{{.Layer}}</td><td class="num">{{.Choices}}</td><td><code>{{.Widths}}</code></td></tr>
{{end}}</table>
{{if .Constraints}}<table class="constraints"><tr><th>constraint</th></tr>
{{range .Constraints}}<tr><td>{{.}}</td></tr>
{{end}}</table>{{end}}

<h2 id="config">Configuration</h2>
{{if .Config}}<table class="kv config">
{{range .Config}}<tr><th>{{.Key}}</th><td><code>{{.Value}}</code></td></tr>
{{end}}</table>
{{else}}<p class="caption">No configuration recorded.</p>
{{end}}

<h2 id="timings">Timings</h2>
{{if .Timings}}<table class="kv timings">
{{range .Timings}}<tr><th>{{.Key}}</th><td class="num">{{.Value}}</td></tr>
{{end}}</table>
{{else}}<p class="caption">No timings recorded.</p>
{{end}}
</main>
</body>
</html>
`))
