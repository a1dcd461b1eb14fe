package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/tabnas/tabnas/internal/search"
)

// progress shows a live line on a terminal and plain log lines elsewhere.
type progress struct {
	mode  string // bar, log, none
	steps int
	start time.Time
	last  time.Time
	shown bool
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newProgress(mode string, steps int) *progress {
	switch mode {
	case "", "auto":
		mode = "log"
		if isTerminal(os.Stderr) {
			mode = "bar"
		}
	}
	return &progress{mode: mode, steps: steps, start: time.Now()}
}

func (p *progress) step(r search.Record, e *search.Engine) {
	if p.mode == "none" {
		return
	}
	now := time.Now()
	every := time.Second / 4
	if p.mode == "log" {
		every = 10 * time.Second
	}
	final := int(e.Step) == p.steps
	if now.Sub(p.last) < every && !final {
		return
	}
	p.last = now
	done := float64(e.Step)
	el := now.Sub(p.start).Seconds()
	rate := done / el
	eta := time.Duration(float64(p.steps-int(e.Step))/rate) * time.Second
	best := "-"
	if sel, err := e.Select(context.Background()); err == nil && len(sel.Candidates) > 0 {
		best = sel.Candidates[0].Arch
	}
	phase := ""
	if r.Warmup {
		phase = " warmup"
	}
	line := fmt.Sprintf("step %d/%d%s  %.1f steps/s  ETA %s  P(V) %.2f  baseline %.3f  best feasible %s",
		e.Step, p.steps, phase, rate, eta.Round(time.Second), r.PV, e.Ctrl.Baseline(), best)
	if p.mode == "bar" {
		fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
		p.shown = true
		return
	}
	fmt.Fprintln(os.Stderr, line)
}

func (p *progress) done() {
	if p.shown {
		fmt.Fprintln(os.Stderr)
	}
}
