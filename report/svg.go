package report

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// svg accumulates one inline SVG element. Every piece of text goes through esc, and every
// coordinate through num, so the output is well-formed XML with no NaN or Inf in it.
type svg struct {
	b    strings.Builder
	w, h float64
}

func newSVG(w, h float64, class, title string) *svg {
	s := &svg{w: w, h: h}
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" class="%s" viewBox="0 0 %s %s" width="%s" height="%s" role="img" aria-label="%s">`,
		esc(class), num(w), num(h), num(w), num(h), esc(title))
	fmt.Fprintf(&s.b, `<title>%s</title>`, esc(title))
	return s
}

// raw appends markup built by the caller from esc'd text and num'd coordinates.
func (s *svg) raw(format string, args ...any) { fmt.Fprintf(&s.b, format, args...) }

func (s *svg) text(x, y float64, class, anchor, text string) {
	s.raw(`<text x="%s" y="%s" class="%s" text-anchor="%s">%s</text>`, num(x), num(y), esc(class), anchor, esc(text))
}

func (s *svg) line(x1, y1, x2, y2 float64, class string) {
	s.raw(`<line x1="%s" y1="%s" x2="%s" y2="%s" class="%s"/>`, num(x1), num(y1), num(x2), num(y2), esc(class))
}

func (s *svg) rect(x, y, w, h float64, class, fill string) {
	if fill != "" {
		s.raw(`<rect x="%s" y="%s" width="%s" height="%s" class="%s" fill="%s"/>`, num(x), num(y), num(max(w, 0)), num(max(h, 0)), esc(class), esc(fill))
		return
	}
	s.raw(`<rect x="%s" y="%s" width="%s" height="%s" class="%s"/>`, num(x), num(y), num(max(w, 0)), num(max(h, 0)), esc(class))
}

// polylines draws the points as one polyline per run of finite values (a NaN breaks the
// line; a run of one point is also marked with a dot), and returns the number of points.
func (s *svg) polylines(xs, ys []float64, class string) int {
	n := 0
	var pts []string
	flush := func() {
		if len(pts) > 0 {
			s.raw(`<polyline class="%s" points="%s"/>`, esc(class), strings.Join(pts, " "))
		}
		if len(pts) == 1 { // a lone point draws no line: mark it
			xy := strings.Split(pts[0], ",")
			s.raw(`<circle cx="%s" cy="%s" r="2.5" class="%s-dot"/>`, xy[0], xy[1], esc(class))
		}
		pts = pts[:0]
	}
	for i := range xs {
		if !finite(xs[i]) || !finite(ys[i]) {
			flush()
			continue
		}
		pts = append(pts, num(xs[i])+","+num(ys[i]))
		n++
	}
	flush()
	return n
}

func (s *svg) HTML() template.HTML {
	return template.HTML(s.b.String() + "</svg>") //nolint:gosec // every text piece is escaped by esc
}

// esc escapes text for HTML and XML alike (& < > " ').
func esc(s string) string { return template.HTMLEscapeString(s) }

// num formats a coordinate compactly; a non-finite value (which the charts never pass on
// purpose) becomes 0 so that the markup stays valid.
func num(v float64) string {
	if !finite(v) {
		return "0"
	}
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// scale maps the domain [d0, d1] linearly onto the range [r0, r1].
type scale struct{ d0, d1, r0, r1 float64 }

func (s scale) at(v float64) float64 {
	return s.r0 + (v-s.d0)/(s.d1-s.d0)*(s.r1-s.r0)
}

// clamp keeps a range coordinate inside [min(r0,r1), max(r0,r1)].
func (s scale) clamp(p float64) float64 {
	lo, hi := min(s.r0, s.r1), max(s.r0, s.r1)
	return math.Max(lo, math.Min(hi, p))
}

// span returns the finite min and max of vs (ok false when there is none).
func span(vs ...[]float64) (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		for _, x := range v {
			if finite(x) {
				lo, hi = math.Min(lo, x), math.Max(hi, x)
			}
		}
	}
	return lo, hi, lo <= hi
}

// widen makes a degenerate or empty domain usable.
func widen(lo, hi float64, ok bool) (float64, float64) {
	if !ok {
		return 0, 1
	}
	if hi-lo < 1e-12*math.Max(1, math.Abs(lo)) {
		d := math.Max(math.Abs(lo)*0.05, 0.5)
		if lo >= 0 && lo-d < 0 && lo < 1 {
			return math.Max(0, lo-d), hi + d
		}
		return lo - d, hi + d
	}
	return lo, hi
}

// niceTicks returns about n round tick values covering [lo, hi] and the step between them.
// The domain is extended outwards to the first and last tick.
// With integer, the step is a whole number (for steps and parameter counts).
func niceTicks(lo, hi float64, n int, integer bool) (ticks []float64, step, nlo, nhi float64) {
	if n < 2 {
		n = 2
	}
	raw := (hi - lo) / float64(n)
	if integer {
		raw = math.Max(raw, 1)
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step = mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m == 2.5 && integer && mag < 10 {
			continue
		}
		if m*mag >= raw*(1-1e-9) {
			step = m * mag
			break
		}
	}
	nlo = math.Floor(lo/step+1e-9) * step
	nhi = math.Ceil(hi/step-1e-9) * step
	for v := nlo; v <= nhi+step*1e-6; v += step {
		ticks = append(ticks, math.Round(v/step)*step)
	}
	return ticks, step, nlo, nhi
}

// ticksIn returns round tick values inside [lo, hi] without extending the domain.
func ticksIn(lo, hi float64, n int, integer bool) ([]float64, float64) {
	all, step, _, _ := niceTicks(lo, hi, n, integer)
	var out []float64
	for _, t := range all {
		if t >= lo-step*1e-6 && t <= hi+step*1e-6 {
			out = append(out, t)
		}
	}
	return out, step
}

// tickLabel formats a tick value with as many decimals as the step needs; large round
// values use k and M suffixes.
func tickLabel(v, step float64) string {
	if v == 0 {
		return "0"
	}
	a := math.Abs(v)
	switch {
	case a >= 1e6 && math.Mod(step, 1e5) == 0:
		return trimZeros(strconv.FormatFloat(v/1e6, 'f', 1, 64)) + "M"
	case a >= 1e4 && math.Mod(step, 1e2) == 0:
		return trimZeros(strconv.FormatFloat(v/1e3, 'f', 1, 64)) + "k"
	}
	dec := 0
	for dec < 8 {
		x := step * math.Pow(10, float64(dec))
		if math.Abs(x-math.Round(x)) <= 1e-6*math.Max(1, x) {
			break
		}
		dec++
	}
	return trimZeros(strconv.FormatFloat(v, 'f', dec, 64))
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// yMode says how a plot draws its y axis.
type yMode int

const (
	yNice  yMode = iota // extend the domain to round ticks
	yExact              // ticks inside the given domain
	yNone               // no ticks: the caller labels the rows (heatmaps)
)

// plot is a rectangular plotting area inside an svg, with its two scales.
type plot struct {
	s              *svg
	left, top      float64
	width, height  float64
	x, y           scale
	xStep, yStep   float64
	xTicks, yTicks []float64
}

// newPlot lays out a plot area with margins and draws the frame, grid, ticks, tick labels,
// axis labels and the title. The y axis is drawn as the mode says.
func newPlot(s *svg, left, top, width, height float64, xlo, xhi, ylo, yhi float64, mode yMode, title, xlabel, ylabel string) *plot {
	p := &plot{s: s, left: left, top: top, width: width, height: height}
	p.xTicks, p.xStep = ticksIn(xlo, xhi, max(2, int(width/90)), true)
	switch mode {
	case yNice:
		p.yTicks, p.yStep, ylo, yhi = niceTicks(ylo, yhi, max(2, int(height/45)), false)
	case yExact:
		p.yTicks, p.yStep = ticksIn(ylo, yhi, max(2, int(height/45)), false)
	}
	p.x = scale{xlo, xhi, left, left + width}
	p.y = scale{ylo, yhi, top + height, top}
	s.rect(left, top, width, height, "plotbg", "")
	for _, t := range p.yTicks {
		y := p.y.at(t)
		s.line(left, y, left+width, y, "grid")
		s.line(left-4, y, left, y, "tick")
		s.text(left-7, y+4, "ticklabel", "end", tickLabel(t, p.yStep))
	}
	for _, t := range p.xTicks {
		x := p.x.at(t)
		s.line(x, top, x, top+height, "grid")
		s.line(x, top+height, x, top+height+4, "tick")
		s.text(x, top+height+17, "ticklabel", "middle", tickLabel(t, p.xStep))
	}
	s.rect(left, top, width, height, "frame", "")
	s.text(left, top-24, "charttitle", "start", title)
	if xlabel != "" {
		s.text(left+width/2, top+height+36, "axislabel", "middle", xlabel)
	}
	if ylabel != "" {
		cy := top + height/2
		s.raw(`<text x="%s" y="%s" class="axislabel" text-anchor="middle" transform="rotate(-90 %s %s)">%s</text>`,
			num(left-48), num(cy), num(left-48), num(cy), esc(ylabel))
	}
	return p
}

// note writes a centered message in the plot area (for empty data).
func (p *plot) note(msg string) {
	p.s.text(p.left+p.width/2, p.top+p.height/2, "note", "middle", msg)
}

// legendItem kinds.
const (
	legDot = iota
	legLine
	legDash
	legBox
	legRing
)

type legendItem struct {
	kind  int
	class string
	label string
}

// legend draws items in a row, right-aligned above the plot area.
func (p *plot) legend(items []legendItem) {
	x := p.left + p.width
	y := p.top - 9
	for i := len(items) - 1; i >= 0; i-- {
		it := items[i]
		w := textWidth(it.label, 11)
		x -= w
		p.s.text(x, y+4, "legendlabel", "start", it.label)
		x -= 22
		switch it.kind {
		case legDot:
			p.s.raw(`<circle cx="%s" cy="%s" r="3" class="%s"/>`, num(x+9), num(y), esc(it.class))
		case legRing:
			p.s.raw(`<circle cx="%s" cy="%s" r="3.5" class="%s"/>`, num(x+9), num(y), esc(it.class))
		case legLine, legDash:
			p.s.line(x+1, y, x+17, y, it.class)
		case legBox:
			p.s.rect(x+2, y-5, 14, 10, it.class, "")
		}
		x -= 14
	}
}

// textWidth estimates the rendered width of text at a font size (for layout only).
func textWidth(s string, size float64) float64 {
	n := 0
	for range s {
		n++
	}
	return float64(n) * size * 0.58
}
