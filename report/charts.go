package report

import (
	"fmt"
	"html/template"
	"math"
	"sort"
	"strings"

	"github.com/tabnas/tabnas/internal/search"
	"github.com/tabnas/tabnas/internal/space"
)

// Layout shared by the step charts, so that their x axes line up on the page.
const (
	chartW    = 960.0
	plotLeft  = 72.0
	plotW     = 790.0
	plotTop   = 46.0
	maxCols   = 400 // heatmap columns at most (steps are averaged into bins)
	bottomPad = 46.0
)

// stepDomain is the x domain [first step, last step + 1] of the history.
func stepDomain(h []search.Record) (float64, float64) {
	if len(h) == 0 {
		return 0, 1
	}
	lo, hi := h[0].Step, h[0].Step
	for _, r := range h {
		lo, hi = min(lo, r.Step), max(hi, r.Step)
	}
	return float64(lo), float64(hi + 1)
}

// shadeWarmup shades every run of warmup steps and returns the number of warmup steps.
func shadeWarmup(p *plot, h []search.Record) int {
	n := 0
	for i := 0; i < len(h); {
		if !h[i].Warmup {
			i++
			continue
		}
		j := i
		for j+1 < len(h) && h[j+1].Warmup {
			j++
		}
		x0, x1 := p.x.clamp(p.x.at(float64(h[i].Step))), p.x.clamp(p.x.at(float64(h[j].Step+1)))
		p.s.rect(x0, p.top, x1-x0, p.height, "warmup", "")
		if x1-x0 > 60 {
			p.s.text((x0+x1)/2, p.top+14, "warmuplabel", "middle", "warmup")
		}
		n += j - i + 1
		i = j + 1
	}
	return n
}

// rlSteps counts the records with an RL step.
func rlSteps(h []search.Record) int {
	n := 0
	for _, r := range h {
		if !r.Warmup {
			n++
		}
	}
	return n
}

// quantile of sorted values (linear interpolation).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 1 {
		return sorted[0]
	}
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	f := pos - float64(i)
	return sorted[i]*(1-f) + sorted[i+1]*f
}

// quantileOr is the quantile of sorted values, 0 when there is none.
func quantileOr(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return quantile(sorted, q)
}

// rewardChart draws the rewards of the RL steps as faint points and the baseline as a
// line, with the warmup shaded.
func rewardChart(in Input) template.HTML {
	const h = 330.0
	s := newSVG(chartW, h, "chart chart-reward", "Reward and baseline over steps")
	hist := in.History
	xlo, xhi := stepDomain(hist)
	var xs, rew, base []float64
	for _, r := range hist {
		if r.Warmup {
			continue
		}
		xs = append(xs, float64(r.Step)+0.5) // the middle of the step's heatmap column
		rew = append(rew, r.Reward)
		base = append(base, r.Baseline)
	}
	// The y range covers the baseline and the rewards within 3 interquartile ranges of the
	// quartiles, so that a few far outliers do not flatten the chart; those are drawn at
	// the edge.
	var fin []float64
	for _, v := range rew {
		if finite(v) {
			fin = append(fin, v)
		}
	}
	sort.Float64s(fin)
	var ylo, yhi float64
	var ok bool
	if q1, q3 := quantileOr(fin, 0.25), quantileOr(fin, 0.75); len(fin) >= 20 && q3 > q1 {
		rlo, rhi := math.Max(fin[0], q1-3*(q3-q1)), math.Min(fin[len(fin)-1], q3+3*(q3-q1))
		blo, bhi, bok := span(base)
		ylo, yhi, ok = rlo, rhi, true
		if bok {
			ylo, yhi = math.Min(ylo, blo), math.Max(yhi, bhi)
		}
	} else {
		ylo, yhi, ok = span(rew, base)
	}
	ylo, yhi = widen(ylo, yhi, ok)
	ylabel := "reward"
	if in.Method == "" || in.Method == "tabnas" || in.Method == "reject" {
		ylabel = "reward Q = 1 − val loss"
	}
	p := newPlot(s, plotLeft, plotTop, plotW, h-plotTop-bottomPad, xlo, xhi, ylo, yhi, yNice,
		"Reward and baseline over steps", "step", ylabel)
	shadeWarmup(p, hist)
	clipped := 0
	s.raw(`<g class="reward-points">`)
	for i, v := range rew {
		if !finite(v) {
			continue
		}
		y := p.y.at(v)
		cy := p.y.clamp(y)
		class := "reward"
		if cy != y {
			clipped++
			class = "reward clipped"
		}
		s.raw(`<circle cx="%s" cy="%s" r="1.8" class="%s"/>`, num(p.x.at(xs[i])), num(cy), class)
	}
	s.raw(`</g>`)
	bx := make([]float64, len(base))
	by := make([]float64, len(base))
	for i, v := range base {
		bx[i] = p.x.at(xs[i])
		by[i] = math.NaN()
		if finite(v) {
			by[i] = p.y.at(v)
		}
	}
	s.polylines(bx, by, "baseline")
	items := []legendItem{{legDot, "reward", "reward per RL step"}, {legLine, "baseline", "baseline (EMA 0.9)"}}
	if len(xs) < len(hist) {
		items = append(items, legendItem{legBox, "warmup", "warmup (no RL)"})
	}
	p.legend(items)
	switch {
	case len(hist) == 0:
		p.note("no steps recorded")
	case len(xs) == 0:
		p.note(fmt.Sprintf("no RL steps: all %d steps were warmup", len(hist)))
	case len(fin) == 0:
		p.note("no finite reward")
	}
	if clipped > 0 {
		s.text(p.left+p.width, h-8, "note small", "end", fmt.Sprintf("%d outlying rewards drawn at the edge", clipped))
	}
	return s.HTML()
}

// movingAverage is the trailing mean over the last w finite values (NaN until one is seen).
func movingAverage(v []float64, w int) []float64 {
	out := make([]float64, len(v))
	var win []float64
	for i, x := range v {
		if finite(x) {
			win = append(win, x)
			if len(win) > w {
				win = win[1:]
			}
		}
		if len(win) == 0 || !finite(x) {
			out[i] = math.NaN()
			continue
		}
		var sum float64
		for _, y := range win {
			sum += y
		}
		out[i] = sum / float64(len(win))
	}
	return out
}

func meanOf(w int) string {
	if w <= 1 {
		return ""
	}
	return fmt.Sprintf(", mean of %d", w)
}

// smoothingWindow picks the moving-average window for n RL steps.
func smoothingWindow(n int) int { return max(1, min(50, n/20)) }

// feasibilityChart draws P̂(V) and the acceptance rate 1/tries of the rejection sampler,
// both as moving averages on [0, 1], with the raw P̂(V) as faint points.
func feasibilityChart(in Input) template.HTML {
	const h = 300.0
	s := newSVG(chartW, h, "chart chart-pv", "Feasibility: P̂(V) and acceptance rate over steps")
	hist := in.History
	xlo, xhi := stepDomain(hist)
	p := newPlot(s, plotLeft, plotTop, plotW, h-plotTop-bottomPad, xlo, xhi, 0, 1, yExact,
		"Feasibility: P̂(V) and acceptance rate over steps", "step", "probability")
	shadeWarmup(p, hist)
	var xs, pv, acc []float64
	for _, r := range hist {
		if r.Warmup {
			continue
		}
		xs = append(xs, float64(r.Step)+0.5)
		pv = append(pv, r.PV)
		a := math.NaN()
		if r.Tries > 0 {
			a = 1 / float64(r.Tries)
		}
		acc = append(acc, a)
	}
	w := smoothingWindow(len(xs))
	px := make([]float64, len(xs))
	for i, x := range xs {
		px[i] = p.x.at(x)
	}
	toY := func(v []float64) []float64 {
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = math.NaN()
			if finite(x) {
				out[i] = p.y.at(math.Max(0, math.Min(1, x)))
			}
		}
		return out
	}
	var items []legendItem
	if in.estimatesPV() {
		s.raw(`<g class="pv-points">`)
		for i, v := range pv {
			if finite(v) {
				s.raw(`<circle cx="%s" cy="%s" r="1.6" class="pvraw"/>`, num(px[i]), num(p.y.at(math.Max(0, math.Min(1, v)))))
			}
		}
		s.raw(`</g>`)
		s.polylines(px, toY(movingAverage(pv, w)), "pv")
		items = append(items, legendItem{legDot, "pvraw", "P̂(V) per step"}, legendItem{legLine, "pv", "P̂(V)" + meanOf(w)})
	}
	s.polylines(px, toY(movingAverage(acc, w)), "accept")
	items = append(items, legendItem{legDash, "accept", "acceptance 1/tries" + meanOf(w)})
	p.legend(items)
	switch {
	case len(hist) == 0:
		p.note("no steps recorded")
	case len(xs) == 0:
		p.note(fmt.Sprintf("no RL steps: all %d steps were warmup", len(hist)))
	}
	if !in.estimatesPV() && len(xs) > 0 {
		s.text(p.left+p.width, h-8, "note small", "end", fmt.Sprintf("method %s does not estimate P(V)", in.Method))
	}
	return s.HTML()
}

// viridis anchors, evenly spaced on [0, 1].
var viridis = [][3]float64{
	{0x44, 0x01, 0x54}, {0x48, 0x28, 0x78}, {0x3e, 0x49, 0x89}, {0x31, 0x68, 0x8e}, {0x26, 0x82, 0x8e},
	{0x1f, 0x9e, 0x89}, {0x35, 0xb7, 0x79}, {0x6e, 0xce, 0x58}, {0xfd, 0xe7, 0x25},
}

// colorLevels is the number of distinct colors of the heatmaps (adjacent equal cells merge).
const colorLevels = 64

// level quantizes a probability to a color level.
func level(p float64) int {
	return int(math.Round(math.Max(0, math.Min(1, p)) * (colorLevels - 1)))
}

// levelColor is the viridis color of a level.
func levelColor(l int) string {
	t := float64(l) / (colorLevels - 1) * float64(len(viridis)-1)
	i := min(int(t), len(viridis)-2)
	f := t - float64(i)
	var c [3]int
	for k := range c {
		c[k] = int(math.Round(viridis[i][k]*(1-f) + viridis[i+1][k]*f))
	}
	return fmt.Sprintf("#%02x%02x%02x", c[0], c[1], c[2])
}

// bins splits n records into at most maxCols contiguous bins [start, end).
func bins(n int) [][2]int {
	cols := min(n, maxCols)
	out := make([][2]int, cols)
	for j := range out {
		out[j] = [2]int{j * n / cols, (j + 1) * n / cols}
	}
	return out
}

// scaleMaxima are the tops the heatmap color scale may have.
var scaleMaxima = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1}

// probScale is the top of the heatmaps' color scale: the smallest of scaleMaxima that
// holds every probability of the run, so that a policy still near uniform over many
// choices is not drawn in one color.
func probScale(hist []search.Record) float64 {
	m := 0.0
	for _, r := range hist {
		for _, ps := range r.Probs {
			for _, p := range ps {
				if finite(p) {
					m = math.Max(m, p)
				}
			}
		}
	}
	for _, v := range scaleMaxima {
		if m <= v+1e-12 {
			return v
		}
	}
	return 1
}

// heatmaps draws one heatmap per layer: x = step (averaged into at most maxCols bins),
// y = width choice, color = probability after the step on [0, top], top shared by all
// layers.
func heatmaps(in Input) (maps []template.HTML, top float64, missing bool) {
	hist := in.History
	top = probScale(hist)
	var chosen []int
	if in.Result != nil {
		chosen, _ = space.ParseWidths(in.Result.Arch)
	}
	warm := -1.0
	for _, r := range hist {
		if r.Warmup {
			warm = math.Max(warm, float64(r.Step+1))
		}
	}
	xlo, xhi := stepDomain(hist)
	bs := bins(len(hist))
	for li, widths := range in.Space.Widths {
		n := len(widths)
		rh := math.Max(8, math.Min(22, 280/float64(n)))
		ph := rh * float64(n)
		h := plotTop + ph + bottomPad
		title := fmt.Sprintf("Layer %d: width probabilities over steps", li+1)
		s := newSVG(chartW, h, "chart heatmap", title)
		p := newPlot(s, plotLeft, plotTop, plotW, ph, xlo, xhi, 0, 1, yNone, title, "step", "")
		// The generic y ticks do not apply: rows are categories.
		cy := p.top + ph/2
		s.raw(`<text x="%s" y="%s" class="axislabel" text-anchor="middle" transform="rotate(-90 %s %s)">width</text>`,
			num(p.left-48), num(cy), num(p.left-48), num(cy))
		every := 1
		if rh < 11 {
			every = int(math.Ceil(11 / rh))
		}
		for j, wd := range widths {
			y0 := p.top + ph - float64(j+1)*rh // smallest width at the bottom
			s.raw(`<g class="hm-row" data-layer="%d" data-width="%d">`, li+1, wd)
			start, cur := -1, -1
			flush := func(end int) {
				if cur >= 0 && start >= 0 {
					x0 := p.x.at(float64(hist[bs[start][0]].Step))
					x1 := p.x.at(float64(hist[bs[end-1][1]-1].Step + 1))
					s.rect(x0, y0, x1-x0+0.4, rh+0.2, "cell", levelColor(cur))
				}
			}
			for b, bin := range bs {
				var sum float64
				k := 0
				for _, r := range hist[bin[0]:bin[1]] {
					if li < len(r.Probs) && len(r.Probs[li]) == n && finite(r.Probs[li][j]) {
						sum += r.Probs[li][j]
						k++
					}
				}
				l := -1
				if k < bin[1]-bin[0] {
					missing = true
				}
				if k > 0 {
					l = level(sum / float64(k) / top)
				}
				if l != cur {
					flush(b)
					start, cur = b, l
				}
			}
			flush(len(bs))
			s.raw(`</g>`)
			if j%every == 0 {
				s.text(p.left-7, y0+rh/2+3.5, "ticklabel", "end", fmt.Sprint(wd))
			}
			if li < len(chosen) && chosen[li] == wd {
				xm := p.left + p.width
				s.raw(`<path class="chosen-marker" d="M%s %sl7 -5v10z"><title>chosen width %d</title></path>`, num(xm+1), num(y0+rh/2), wd)
			}
		}
		if warm > xlo && warm < xhi {
			x := p.x.at(warm)
			s.line(x, p.top, x, p.top+ph, "warmupline")
			s.text(x+3, p.top-4, "legendlabel", "start", "end of warmup")
		}
		if len(hist) == 0 {
			p.note("no steps recorded")
		}
		colorScale(s, p.left+p.width+26, p.top, math.Min(ph, 200), top)
		maps = append(maps, s.HTML())
	}
	return maps, top, missing
}

// colorScale draws the probability legend: a vertical bar from 0 (bottom) to top.
func colorScale(s *svg, x, y, h, top float64) {
	const w = 12.0
	step := h / colorLevels
	s.raw(`<g class="colorscale">`)
	for l := 0; l < colorLevels; l++ {
		s.rect(x, y+h-float64(l+1)*step, w, step+0.3, "", levelColor(l))
	}
	s.raw(`</g>`)
	s.rect(x, y, w, h, "frame", "")
	ticks := []float64{0, 0.25, 0.5, 0.75, 1}
	if h < 100 {
		ticks = []float64{0, 0.5, 1}
	}
	for _, t := range ticks {
		ty := y + h - t*h
		s.line(x+w, ty, x+w+3, ty, "tick")
		s.text(x+w+5, ty+3.5, "ticklabel", "start", tickLabel(t*top, top/4))
	}
	s.text(x+w/2, y-6, "legendlabel", "middle", "p")
}

// scatterChart draws the retrained candidates' validation and test losses against their
// parameter counts, with the parameter budget as a vertical line.
func scatterChart(in Input) template.HTML {
	const h = 360.0
	title := "Retrained candidates: loss vs parameters"
	s := newSVG(chartW, h, "chart chart-trials", title)
	var xs, vl, tl []float64
	for _, t := range in.Trials {
		xs = append(xs, float64(t.Params))
		vl = append(vl, t.ValLoss)
		tl = append(tl, t.TestLoss)
	}
	budget, hasBudget := in.budget()
	bv := []float64{}
	if hasBudget {
		bv = append(bv, budget)
	}
	xlo, xhi, ok := span(xs, bv)
	xlo, xhi = widen(xlo, xhi, ok)
	pad := (xhi - xlo) * 0.1
	xlo, xhi = math.Max(0, xlo-pad), xhi+pad
	ylo, yhi, yok := span(vl, tl)
	ylo, yhi = widen(ylo, yhi, yok)
	p := newPlot(s, plotLeft, plotTop, plotW, h-plotTop-bottomPad, xlo, xhi, ylo, yhi, yNice,
		title, "parameters", fmt.Sprintf("loss (%s)", in.lossName()))
	if hasBudget {
		x := p.x.at(budget)
		s.line(x, p.top, x, p.top+p.height, "budget")
		s.text(x-4, p.top+p.height-6, "budgetlabel", "end", "budget "+fmtInt(int64(budget)))
	}
	// Pair each trial's validation and test point with a thin line.
	for i := range in.Trials {
		if finite(vl[i]) && finite(tl[i]) {
			s.line(p.x.at(xs[i]), p.y.at(vl[i]), p.x.at(xs[i]), p.y.at(tl[i]), "pair")
		}
	}
	chosen := ""
	if in.Result != nil {
		chosen = in.Result.Arch
	}
	type box struct{ x0, y0, x1, y1 float64 }
	var placed []box
	overlaps := func(b box) bool {
		for _, o := range placed {
			if b.x0 < o.x1 && o.x0 < b.x1 && b.y0 < o.y1 && o.y0 < b.y1 {
				return true
			}
		}
		return false
	}
	order := make([]int, len(in.Trials))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return xs[order[a]] < xs[order[b]] })
	for _, i := range order {
		t := in.Trials[i]
		x := p.x.at(xs[i])
		tip := fmt.Sprintf("%s: %s params, val %s, test %s", t.Arch, fmtInt(t.Params), fmtNum(t.ValLoss), fmtNum(t.TestLoss))
		if finite(tl[i]) {
			s.raw(`<rect x="%s" y="%s" width="7" height="7" class="trial-test"><title>%s</title></rect>`, num(x-3.5), num(p.y.at(tl[i])-3.5), esc(tip))
		}
		var y float64
		switch {
		case finite(vl[i]):
			y = p.y.at(vl[i])
			class := "trial-val"
			if t.Arch == chosen {
				class += " chosen"
				s.raw(`<circle cx="%s" cy="%s" r="8" class="chosen-ring"/>`, num(x), num(y))
			}
			s.raw(`<circle cx="%s" cy="%s" r="4.5" class="%s"><title>%s</title></circle>`, num(x), num(y), class, esc(tip))
		case finite(tl[i]):
			y = p.y.at(tl[i]) // label the test point
		default:
			continue
		}
		label := t.Arch
		if t.Arch == chosen {
			label += " (chosen)"
		}
		w := textWidth(label, 11)
		// Try positions right, then left, of the point, stepping away vertically.
		var b box
		var lx, ly float64
		anchor := "start"
		found := false
		for k := 0; k < 12 && !found; k++ {
			dy := float64((k+1)/2) * 13
			if k%2 == 1 {
				dy = -dy
			}
			for _, side := range []float64{1, -1} {
				ly = y + 4 + dy
				if side > 0 {
					lx, anchor = x+10, "start"
					b = box{lx, ly - 10, lx + w, ly + 3}
				} else {
					lx, anchor = x-10, "end"
					b = box{lx - w, ly - 10, lx, ly + 3}
				}
				if b.x0 >= p.left && b.x1 <= chartW-2 && b.y0 >= p.top && b.y1 <= p.top+p.height && !overlaps(b) {
					found = true
					break
				}
			}
		}
		if !found {
			lx, ly, anchor = x+10, y+4, "start"
			b = box{lx, ly - 10, lx + w, ly + 3}
		}
		placed = append(placed, b)
		s.text(lx, ly, "pointlabel", anchor, label)
	}
	p.legend([]legendItem{{legDot, "trial-val", "validation loss"}, {legBox, "trial-test", "test loss"}, {legRing, "chosen-ring", "chosen"}})
	if len(in.Trials) == 0 {
		p.note("no retrained candidates")
	} else if !yok {
		p.note("no finite loss")
	}
	if !hasBudget {
		s.text(p.left+p.width, h-8, "note small", "end", "no parameter budget among the constraints")
	}
	return s.HTML()
}

// joinWidths lists the width choices of a layer compactly.
func joinWidths(ws []int) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = fmt.Sprint(w)
	}
	return strings.Join(parts, " ")
}
