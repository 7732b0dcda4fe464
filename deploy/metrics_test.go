package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// promqlMetricNames returns the metric names a PromQL expression selects:
// identifiers outside label matchers, strings, ranges and grouping lists
// that are not functions, aggregations or keywords.
func promqlMetricNames(expr string) []string {
	keywords := map[string]bool{
		"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
		"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
		"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true, "inf": true, "nan": true,
	}
	grouping := map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(i int) int {
		for i < len(expr) && strings.IndexByte(" \t\r\n", expr[i]) >= 0 {
			i++
		}
		return i
	}
	// skipTo returns the index after the close matching the open at i.
	skipTo := func(i int, open, close byte) int {
		depth := 0
		for ; i < len(expr); i++ {
			switch expr[i] {
			case '"', '\'', '`':
				q := expr[i]
				for i++; i < len(expr) && expr[i] != q; i++ {
					if expr[i] == '\\' && q != '`' {
						i++
					}
				}
			case open:
				depth++
			case close:
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	var names []string
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			i = j + 1
		case c == '{':
			i = skipTo(i, '{', '}')
		case c == '[':
			i = skipTo(i, '[', ']')
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '$': // a dashboard variable
			i++
			if i < len(expr) && expr[i] == '{' {
				i = skipTo(i, '{', '}')
			}
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++ // numbers, durations (5m), exponents (1e3)
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			next := skipSpace(j)
			switch {
			case grouping[word]:
				if next < len(expr) && expr[next] == '(' {
					j = skipTo(next, '(', ')')
				}
			case keywords[word]:
			case next < len(expr) && expr[next] == '(':
				// a function call
			default:
				names = append(names, word)
			}
			i = j
		default:
			i++
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func TestPromQLMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up{job="botd"} == 0`, []string{"up"}},
		{`sum by (namespace) (rate(botd_a_total{job="botd", code=~"5.."}[5m])) / sum by (namespace) (rate(botd_a_total[5m])) > 0.05`, []string{"botd_a_total"}},
		{`(sum by (namespace) (botd_calls{state!="terminated"}) > 0) unless on (namespace) (sum by (namespace)(rate(botd_n_total[30m])) > 0)`, []string{"botd_calls", "botd_n_total"}},
		{`histogram_quantile(0.99, sum by (le, operation) (rate(botd_h_seconds_bucket{pod=~"$pod", ns="${ns}"}[$__rate_interval])))`, []string{"botd_h_seconds_bucket"}},
		{`a offset 5m + b @ 1609746000 - 1e3 * c`, []string{"a", "b", "c"}},
		{`count without (instance) (x) * on (pod) group_left (node) y`, []string{"x", "y"}},
		{`sum(x) by (le) or vector(0)`, []string{"x"}},
		{`kube_statefulset_status_replicas_ready{statefulset="botd"} < kube_statefulset_replicas{statefulset="botd"}`, []string{"kube_statefulset_replicas", "kube_statefulset_status_replicas_ready"}},
		{`rate(x{a="}{[("}[5m])`, []string{"x"}},
		{`topk(5, sum by (a) (y))`, []string{"y"}},
	}
	for _, tt := range tests {
		if got := promqlMetricNames(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("promqlMetricNames(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

type alertRule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func readRules(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("monitoring", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Kind string `json:"kind"`
		Spec struct {
			Groups []struct {
				Name  string      `json:"name"`
				Rules []alertRule `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Kind != "PrometheusRule" {
		t.Fatalf("monitoring/prometheusrule.yaml is a %q", pr.Kind)
	}
	var rules []alertRule
	for _, g := range pr.Spec.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatal("no rules")
	}
	return rules
}

// TestAlertRules checks each alert is complete enough to page someone
// with: a severity, a hold time, a summary and a description, and a
// balanced expression.
func TestAlertRules(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range readRules(t) {
		if r.Alert == "" {
			t.Errorf("a rule without alert name: %q", r.Expr)
			continue
		}
		if seen[r.Alert] {
			t.Errorf("%s is defined twice", r.Alert)
		}
		seen[r.Alert] = true
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
		}
		if _, err := time.ParseDuration(r.For); err != nil {
			t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: needs summary and description annotations", r.Alert)
		}
		if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") || strings.Count(r.Expr, "{") != strings.Count(r.Expr, "}") {
			t.Errorf("%s: unbalanced expression %q", r.Alert, r.Expr)
		}
		if len(promqlMetricNames(r.Expr)) == 0 {
			t.Errorf("%s: expression selects no metric", r.Alert)
		}
	}
	for _, want := range []string{
		"BotdCallbackErrors", "BotdAuthFailures", "BotdGraphThrottled", "BotdGraphServerErrors",
		"BotdOperationFailures", "BotdNoNotifications", "BotdReplicaDown", "BotdForwardingFailures",
	} {
		if !seen[want] {
			t.Errorf("no %s alert", want)
		}
	}
}

var (
	labelValuesRE = regexp.MustCompile(`^\s*label_values\((.*),\s*[A-Za-z_]\w*\s*\)\s*$`)
	queryResultRE = regexp.MustCompile(`^\s*query_result\((.*)\)\s*$`)
)

// dashboardExprs returns the dashboard's PromQL: panel targets and query
// variables.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("grafana", "botd.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/botd.json: %v", err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if s, ok := c.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(dash["panels"])
	if tm, ok := dash["templating"].(map[string]any); ok {
		list, _ := tm["list"].([]any)
		for _, it := range list {
			v, _ := it.(map[string]any)
			if v["type"] != "query" {
				continue
			}
			q, _ := v["query"].(string)
			if m, ok := v["query"].(map[string]any); ok {
				q, _ = m["query"].(string)
			}
			switch {
			case labelValuesRE.MatchString(q):
				exprs = append(exprs, labelValuesRE.FindStringSubmatch(q)[1])
			case queryResultRE.MatchString(q):
				exprs = append(exprs, queryResultRE.FindStringSubmatch(q)[1])
			case strings.HasPrefix(q, "label_values(") || strings.HasPrefix(q, "label_names(") || strings.HasPrefix(q, "metrics("):
			default:
				exprs = append(exprs, q)
			}
		}
	}
	if len(exprs) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return exprs
}

// usedMetrics maps every metric name the alerts and the dashboard use to
// where it is used.
func usedMetrics(t *testing.T) map[string][]string {
	used := map[string][]string{}
	for _, r := range readRules(t) {
		for _, n := range promqlMetricNames(r.Expr) {
			used[n] = append(used[n], "alert "+r.Alert)
		}
	}
	for _, e := range dashboardExprs(t) {
		for _, n := range promqlMetricNames(e) {
			used[n] = append(used[n], "dashboard")
		}
	}
	return used
}

// exportedNames reads a Prometheus text exposition: sample names and
// family names.
func exportedNames(body string) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if name, _, ok := strings.Cut(f, " "); ok {
				out[name] = true
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			out[line[:i]] = true
		}
	}
	return out
}

// isExported reports whether name, or the histogram/summary family it
// belongs to, is exported.
func isExported(exported map[string]bool, name string) bool {
	if exported[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && exported[base] {
			return true
		}
	}
	return false
}

// incomingCall is a notification of a new incoming call: botd's automation
// answers it, which makes the automation and Graph series appear.
const incomingCall = `{"value":[{"changeType":"created","resourceUrl":"/communications/calls/421f0b00-a52f-4e3e-8ab2-2b0a3e4c9c61",
 "resourceData":{"@odata.type":"#microsoft.graph.call","id":"421f0b00-a52f-4e3e-8ab2-2b0a3e4c9c61","state":"incoming","direction":"incoming"}}]}`

// createCall is an admin API create-call body (the seed's peer-to-peer
// example without its callbackUri, which botd fills in).
const createCall = `{"targets":[{"identity":{"user":{"id":"112f7296-5fa4-42ca-bae8-6a692b15d4b8","displayName":"John"}}}],
 "requestedModalities":["audio"],"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"}}`

// invite is an admin API invite body.
const invite = `{"participants":[{"identity":{"user":{"id":"98da8a1a-1b87-452c-a713-65d3f10b5555","displayName":"Alex"}}}]}`

// TestMetricsExported checks that every metric the alerts and the
// dashboard use is one botd exports. It runs the real binary twice and
// drives it until its label-vector series exist: once in emulator mode (a
// created call and an invite on it, every seed notification, an incoming
// call, a notification on the per-instance callback path), once against a
// fake Graph that throttles, so the retry series appear. Pending names are logged, not
// failed; external ones (Prometheus, kube-state-metrics) are skipped.
func TestMetricsExported(t *testing.T) {
	used := usedMetrics(t)
	var want []string
	for n := range used {
		if pendingMetrics[n] == "" && externalMetrics[n] == "" {
			want = append(want, n)
		}
	}
	slices.Sort(want)

	// Emulator mode: botd's embedded Graph emulator answers its requests
	// and posts the resulting notifications back to it.
	a := startBotd(t, testEnv()...)
	callback := "http://" + a.publicAddr + "/api/calls"
	code, body := post(t, "http://"+a.adminAddr+"/v1/calls", []byte(createCall))
	if code != http.StatusCreated {
		t.Fatalf("admin create call: %d %s", code, body)
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil || created.ID == "" {
		t.Fatalf("admin create call answered %s", body)
	}
	// An invite is an operation: its completion makes the operation
	// series (and its latency histogram) appear.
	if code, body := post(t, "http://"+a.adminAddr+"/v1/calls/"+created.ID+"/participants/invite", []byte(invite)); code/100 != 2 {
		t.Errorf("admin invite: %d %s", code, body)
	}
	seeds, _ := filepath.Glob(filepath.Join(repoRoot, "testdata", "seeds", "*_notification.json"))
	if len(seeds) == 0 {
		t.Fatal("no seed notifications in testdata/seeds")
	}
	accepted := 0
	for _, f := range seeds {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := post(t, callback, b); code == http.StatusAccepted {
			accepted++
		}
	}
	t.Logf("botd accepted %d of %d seed notifications", accepted, len(seeds))
	if code, body := post(t, callback, []byte(incomingCall)); code != http.StatusAccepted {
		t.Logf("incoming call notification: %d %s", code, body)
	}
	if code, body := post(t, callback+"/"+testInstance, []byte(incomingCall)); code != http.StatusAccepted {
		t.Logf("notification on the instance path: %d %s", code, body)
	}
	if code, body := get(t, "http://"+a.adminAddr+"/v1/calls"); code != http.StatusOK {
		t.Errorf("admin list calls: %d %s", code, body)
	}

	// Against a Graph that throttles the first create-call attempt.
	var creates atomic.Int32
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/token":
			fmt.Fprint(w, `{"token_type":"Bearer","expires_in":3600,"access_token":"deploy-test-token"}`)
		case r.Method == http.MethodPost && r.URL.Path == "/v1.0/communications/calls":
			if creates.Add(1) == 1 {
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusTooManyRequests)
				fmt.Fprint(w, `{"error":{"code":"TooManyRequests","message":"throttled"}}`)
				return
			}
			id := "2e1a0b00-2db4-4022-9570-243709c565ab"
			w.Header().Set("Location", "https://graph.microsoft.com/v1.0/communications/calls/"+id)
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"@odata.type":"#microsoft.graph.call","id":%q,"state":"establishing","direction":"outgoing"}`, id)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":{"code":"NotFound","message":"not in the deploy test's fake"}}`)
		}
	}))
	defer fake.Close()
	b := startBotd(t, testEnv(
		"BOTD_TENANT_ID=00000000-0000-4000-8000-0000000000aa",
		"BOTD_CLIENT_ID=00000000-0000-4000-8000-0000000000bb",
		"BOTD_CLIENT_SECRET=deploy-test-secret",
		"BOTD_GRAPH_BASE_URL="+fake.URL+"/v1.0",
		"BOTD_TOKEN_URL="+fake.URL+"/token",
		"BOTD_PUBLIC_URL=http://127.0.0.1",
		// Real credentials would make botd fetch Microsoft's signing keys;
		// this run never receives callbacks, and its listener is loopback.
		"BOTD_INBOUND_AUTH=off",
	)...)
	if code, body := post(t, "http://"+b.adminAddr+"/v1/calls", []byte(createCall)); code != http.StatusCreated {
		t.Errorf("admin create call against the throttling fake: %d %s", code, body)
	}
	// Unsigned callbacks are accepted here (inbound auth is off on this
	// loopback listener): an incoming call makes automation answer it.
	if code, body := post(t, "http://"+b.publicAddr+"/api/calls", []byte(incomingCall)); code != http.StatusAccepted {
		t.Errorf("incoming call notification: %d %s", code, body)
	}
	if creates.Load() < 2 {
		t.Errorf("botd sent %d create-call attempts to the fake, want a retry after the 429", creates.Load())
	}

	// Automation runs after the callback's reply: scrape until every
	// wanted name shows up, or give up.
	var exported map[string]bool
	var missing []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		exported = map[string]bool{}
		for _, p := range []*botdProc{a, b} {
			code, body := get(t, "http://"+p.adminAddr+"/metrics")
			if code != http.StatusOK {
				t.Fatalf("GET /metrics: %d", code)
			}
			for n := range exportedNames(body) {
				exported[n] = true
			}
		}
		missing = missing[:0]
		for _, n := range want {
			if !isExported(exported, n) {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, n := range missing {
		t.Errorf("%s (used by %s) is not exported by botd", n, strings.Join(slices.Compact(used[n]), ", "))
	}
	for n, why := range pendingMetrics {
		switch {
		case isExported(exported, n):
			t.Logf("pending metric %s is now exported: remove it from pendingMetrics", n)
		case len(used[n]) > 0:
			t.Logf("pending metric %s (%s), used by %s", n, why, strings.Join(slices.Compact(used[n]), ", "))
		}
	}
	if len(want) < 10 {
		t.Errorf("only %d botd metrics found in the alerts and dashboard: the name extraction is broken", len(want))
	}
}

func TestExportedNames(t *testing.T) {
	got := exportedNames("# HELP a_seconds x\n# TYPE a_seconds histogram\na_seconds_bucket{le=\"1\"} 1\na_seconds_sum 2\nb_total{x=\"y\"} 3\nc 4\n")
	for _, n := range []string{"a_seconds", "a_seconds_bucket", "a_seconds_sum", "b_total", "c"} {
		if !got[n] {
			t.Errorf("%s not found in %v", n, got)
		}
	}
	if !isExported(got, "a_seconds_count") || isExported(got, "b_count") {
		t.Error("isExported does not map histogram suffixes to their family")
	}
}
