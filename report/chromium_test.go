//go:build unix

package report

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromiumNames are the executables tried, after $TABNAS_CHROMIUM.
var chromiumNames = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless_shell"}

func findChromium() (string, error) {
	if p := os.Getenv("TABNAS_CHROMIUM"); p != "" {
		return exec.LookPath(p)
	}
	for _, n := range chromiumNames {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", errors.New("none of " + strings.Join(chromiumNames, ", ") + " is on PATH (set TABNAS_CHROMIUM, or install Debian's chromium: apt-get install -y --no-install-recommends chromium)")
}

// runChromium runs headless Chromium with a fresh profile and returns stdout and the log.
// The whole process group is killed on timeout, so no renderer outlives the test.
func runChromium(t *testing.T, bin string, args ...string) (stdout, log string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--enable-logging=stderr", "--v=0"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("chromium timed out: %v\n%s", ctx.Err(), tail(errb.String(), 40))
	}
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, tail(errb.String(), 40))
	}
	return out.String(), errb.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// consoleErrors returns the log lines of page console messages or uncaught errors.
func consoleErrors(log string) []string {
	var bad []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "CONSOLE") || strings.Contains(l, "Uncaught") {
			bad = append(bad, l)
		}
	}
	return bad
}

// The report opens in a real browser without console errors, its DOM keeps every chart,
// and it renders to a non-trivial picture.
func TestReportInChromium(t *testing.T) {
	bin, err := findChromium()
	if err != nil {
		t.Skipf("SKIPPED: NO CHROMIUM, the report was not checked in a browser: %v", err)
	}
	var in Input
	if _, err := os.Stat(higgsPath); err == nil {
		in = realInput(t)
	} else {
		t.Logf("shared datasets absent (%v): checking a synthetic run instead", err)
		in = synthetic(500, 125)
	}
	dir := t.TempDir()
	if out := os.Getenv("TABNAS_REPORT_OUT"); out != "" {
		dir = out
	}
	page := filepath.Join(dir, "report.html")
	if err := os.WriteFile(page, []byte(render(t, in)), 0o644); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(page)
	if err != nil {
		t.Fatal(err)
	}
	url := "file://" + abs
	wantSVG := 3 + len(in.Space.Widths) // reward, P(V), scatter, one heatmap per layer

	// Screenshot.
	shot := filepath.Join(dir, "shot.png")
	_, log := runChromium(t, bin, "--screenshot="+shot, "--window-size=1200,3000", url)
	if bad := consoleErrors(log); len(bad) > 0 {
		t.Errorf("console errors while rendering:\n%s", strings.Join(bad, "\n"))
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v\n%s", err, tail(log, 40))
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	checkPicture(t, img)

	// DOM after parsing and layout.
	dom, log := runChromium(t, bin, "--dump-dom", url)
	if bad := consoleErrors(log); len(bad) > 0 {
		t.Errorf("console errors while loading:\n%s", strings.Join(bad, "\n"))
	}
	if n := strings.Count(dom, "<svg"); n != wantSVG {
		t.Errorf("dumped DOM has %d <svg> elements, want %d", n, wantSVG)
	}
	for _, want := range []string{`class="chart chart-reward"`, `class="chart chart-pv"`, `class="chart chart-trials"`, `class="hm-row"`, "<polyline", "Summary"} {
		if !strings.Contains(dom, want) {
			t.Errorf("dumped DOM lacks %s", want)
		}
	}
	t.Logf("chromium %s: %d-byte DOM, screenshot %v", bin, len(dom), img.Bounds().Size())

	// The check above is only as good as the log: a page with a script error must show up.
	bad := filepath.Join(t.TempDir(), "bad.html")
	if err := os.WriteFile(bad, []byte(`<!DOCTYPE html><html><body><script>console.error("boom"); undefinedFn();</script></body></html>`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, log := runChromium(t, bin, "--dump-dom", "file://"+bad); len(consoleErrors(log)) == 0 {
		t.Errorf("a page with a script error logged no console line; the console check is blind with this chromium:\n%s", tail(log, 20))
	}
}

// checkPicture asserts the screenshot has the window's size and shows more than a blank
// page: many colors (heatmaps) and a fair share of ink.
func checkPicture(t *testing.T, img image.Image) {
	t.Helper()
	b := img.Bounds()
	if b.Dx() != 1200 || b.Dy() != 3000 {
		t.Errorf("screenshot is %v, want 1200×3000", b.Size())
	}
	colors := map[[3]uint32]bool{}
	ink := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			if r>>8 < 200 || g>>8 < 200 || bl>>8 < 200 {
				ink++
			}
		}
	}
	total := (b.Dx() / 2) * (b.Dy() / 2)
	if len(colors) < 50 {
		t.Errorf("screenshot has only %d colors", len(colors))
	}
	if frac := float64(ink) / float64(total); frac < 0.03 {
		t.Errorf("screenshot is nearly blank: %.1f%% dark pixels", 100*frac)
	}
	t.Logf("screenshot: %d colors, %.1f%% dark pixels", len(colors), 100*float64(ink)/float64(total))
}
