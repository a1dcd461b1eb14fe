package report

import (
	"fmt"
	"html/template"
	"math"
)

// Proxy is how well the shared-weight score ranked architectures in the run: pairs of
// proxy score and stand-alone validation loss, and their rank correlations.
type Proxy struct {
	KendallTau *float64     `json:"kendall_tau"` // nil: not measured
	Spearman   *float64     `json:"spearman"`
	RungTau    *float64     `json:"rung_tau"` // against the finish's first rung
	Trusted    bool         `json:"trusted"`
	Note       string       `json:"note,omitempty"`
	Points     []ProxyPoint `json:"points,omitempty"`
}

// ProxyPoint is one architecture of the proxy check.
type ProxyPoint struct {
	Arch       string  `json:"arch"`
	Source     string  `json:"source"` // "top" (most probable by the policy) or "uniform"
	Proxy      float64 `json:"proxy"`
	Standalone float64 `json:"standalone"`
}

// proxyChart draws stand-alone validation loss against the proxy score: a proxy that
// ranks well puts the points on a rising band.
func proxyChart(in Input) template.HTML {
	if in.Proxy == nil || len(in.Proxy.Points) == 0 {
		return ""
	}
	const h = 320.0
	pr := in.Proxy
	title := fmt.Sprintf("Proxy check: Kendall τ %s, Spearman ρ %s over %d architectures", fmtTau(pr.KendallTau), fmtTau(pr.Spearman), len(pr.Points))
	s := newSVG(chartW, h, "chart chart-proxy", title)
	var xs, ys []float64
	for _, p := range pr.Points {
		xs, ys = append(xs, p.Proxy), append(ys, p.Standalone)
	}
	xlo, xhi, xok := span(xs, nil)
	xlo, xhi = widen(xlo, xhi, xok)
	ylo, yhi, yok := span(ys, nil)
	ylo, yhi = widen(ylo, yhi, yok)
	p := newPlot(s, plotLeft, plotTop, plotW, h-plotTop-bottomPad, xlo, xhi, ylo, yhi, yNice,
		title, "shared-weight validation loss (proxy)", fmt.Sprintf("stand-alone validation loss (%s)", in.lossName()))
	for _, pt := range pr.Points {
		if !finite(pt.Proxy) || !finite(pt.Standalone) {
			continue
		}
		class := "proxy-uniform"
		if pt.Source == "top" {
			class = "proxy-top"
		}
		tip := fmt.Sprintf("%s (%s): proxy %s, stand-alone %s", pt.Arch, pt.Source, fmtNum(pt.Proxy), fmtNum(pt.Standalone))
		s.raw(`<circle cx="%s" cy="%s" r="4.5" class="%s"><title>%s</title></circle>`, num(p.x.at(pt.Proxy)), num(p.y.at(pt.Standalone)), class, esc(tip))
	}
	p.legend([]legendItem{{legDot, "proxy-top", "most probable under the policy"}, {legDot, "proxy-uniform", "uniform from the feasible set"}})
	if !xok || !yok {
		p.note("no finite scores")
	}
	return s.HTML()
}

func fmtTau(v *float64) string {
	if v == nil || math.IsNaN(*v) {
		return "—"
	}
	return fmt.Sprintf("%.2f", *v)
}

// Measured is v, or nil when v is not a number (JSON has no NaN).
func Measured(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}
