package main

import (
	"bufio"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// readmeMetrics returns the metric names in README.md's metrics table: the
// back-quoted names in the first column of the table whose header starts
// with "| metric |".
func readmeMetrics(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	name := regexp.MustCompile("`(botd_[a-z0-9_]+)`")
	var names []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "| metric |"):
			in = true
		case in && !strings.HasPrefix(line, "|"):
			in = false
		case in:
			cells := strings.Split(line, "|")
			if len(cells) < 2 {
				continue
			}
			for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
				names = append(names, m[1])
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(names) < 20 {
		t.Fatalf("found %d metrics in README.md's metrics table, want the whole table: %v", len(names), names)
	}
	return names
}

// scrapeHelp scrapes the admin /metrics of a botd and returns the help text
// of every metric family it exports. A family appears only once it has a
// series: a vec no label set was touched on is missing.
func scrapeHelp(t *testing.T, b *botd) map[string]string {
	t.Helper()
	code, body := get(t, b.admin+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", code, body)
	}
	help := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, "# HELP ")
		if !ok {
			continue
		}
		name, text, _ := strings.Cut(rest, " ")
		help[name] = text
	}
	return help
}

// TestREADMEMetricsExportedFromStart: every metric in the README's metrics
// table is on /metrics right after start, before any traffic, so that a new
// user can find each one (and dashboards show 0, not "no data").
func TestREADMEMetricsExportedFromStart(t *testing.T) {
	// And the Go collector's metrics the README names beside the table.
	want := append(readmeMetrics(t), "go_gc_heap_live_bytes", "go_gc_gogc_percent")
	// With an admin token, as in production: botd_admin_auth_failures_total
	// exists only then.
	b := start(t, map[string]string{"BOTD_ADMIN_TOKEN": "metrics-readme-test-token-0123456789abcdef"})
	got := scrapeHelp(t, b)
	var missing []string
	for _, n := range want {
		if _, ok := got[n]; !ok {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("README metrics not exported before traffic: %v", missing)
	}
}

// helpProperNouns are words with an inner capital that are not Go names:
// product names and Graph's own JSON names.
var helpProperNouns = map[string]bool{
	"keepAlive": true, "callbackUri": true, "OpenID": true, "commsNotifications": true,
}

// goName matches a CamelCase word with an inner capital (MaxCalls,
// callState), a selector (Options.X) or a call (Run()).
var goName = regexp.MustCompile(`\b[A-Za-z][a-z0-9]*[A-Z][A-Za-z0-9]*\b|\b[A-Z]\w*\.[A-Z]\w*|\w*\(\)`)

// TestMetricHelpHasNoGoNames: botd's help texts speak to operators: config
// is BOTD_* variables and plain words, never a Go identifier such as
// MaxCalls, Options.X or Run().
func TestMetricHelpHasNoGoNames(t *testing.T) {
	// An admin token adds the admin auth metrics; /metrics stays open.
	b := start(t, map[string]string{"BOTD_ADMIN_TOKEN": "metrics-help-test-token-0123456789abcdef"})
	help := scrapeHelp(t, b)
	n := 0
	for name, text := range help {
		if !strings.HasPrefix(name, "botd_") {
			continue
		}
		n++
		for _, w := range goName.FindAllString(text, -1) {
			if helpProperNouns[w] || isAllCaps(w) {
				continue
			}
			t.Errorf("%s: help %q has the Go-style name %q", name, text, w)
		}
	}
	if n < 20 {
		t.Fatalf("only %d botd_ metrics on /metrics", n)
	}
}

// isAllCaps: an acronym or a BOTD_* variable, like HTTP, RS256, JWT or
// the plural POSTs.
func isAllCaps(w string) bool {
	if len(w) > 2 && strings.HasSuffix(w, "s") {
		w = w[:len(w)-1]
	}
	return strings.ToUpper(w) == w
}
