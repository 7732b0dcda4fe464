package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/emulator"
	"github.com/botd/botd/internal/testkit"
)

// sleeps is the injected Sleep: it records each wait and returns at once,
// so retry tests never wait on a clock.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

type env struct {
	fg     *emulator.Server
	c      *Client
	cfg    Config
	reg    *prometheus.Registry
	sleeps *sleeps
	logs   *testkit.Buffer
}

// withTunables returns c with each tunable the test left zero set from
// DefaultConfig, except MaxRetries: 0 is no retries, kept as written.
func withTunables(c Config) Config {
	d := DefaultConfig()
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.RetryBudget == 0 {
		c.RetryBudget = d.RetryBudget
	}
	if c.BackoffInitial == 0 {
		c.BackoffInitial = d.BackoffInitial
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = d.BackoffMax
	}
	if c.MaxTenants == 0 {
		c.MaxTenants = d.MaxTenants
	}
	return c
}

// newEnv starts a fake Graph and a client configured against it (config
// only: BaseURL, TokenURL, credentials), with tiny backoff and an instant
// Sleep.
func newEnv(t *testing.T, opts emulator.Options, mut ...func(*Config)) *env {
	t.Helper()
	fg := emulator.New(opts)
	fg.Start()
	t.Cleanup(fg.Close)
	o := fg.Options()
	sl := &sleeps{}
	cfg := withTunables(Config{
		TenantID:       o.TenantID,
		ClientID:       o.ClientID,
		ClientSecret:   o.ClientSecret,
		BaseURL:        fg.BaseURL(),
		TokenURL:       fg.TokenURL(),
		MaxRetries:     DefaultMaxRetries,
		BackoffInitial: time.Millisecond,
		BackoffMax:     4 * time.Millisecond,
		Sleep:          sl.sleep,
		Transport:      tokenForms.transport(http.DefaultTransport.(*http.Transport).Clone()),
	})
	for _, m := range mut {
		m(&cfg)
	}
	logs := &testkit.Buffer{}
	reg := prometheus.NewRegistry()
	c, err := New(cfg, zerolog.New(logs).Level(zerolog.DebugLevel), reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return &env{fg: fg, c: c, cfg: cfg, reg: reg, sleeps: sl, logs: logs}
}

// jsonDiff compares two JSON documents semantically, member by member, and
// returns one line per difference (empty when equivalent).
//
// null ≡ absent: an object member whose value is null is dropped on both
// sides before comparing. The seed requests carry explicit nulls
// ("region": null, "passcode": null) where our types omit the empty field;
// Graph treats an omitted optional property and a null one alike. Anything
// else is strict: member order does not matter, array order does, and
// numbers compare by value.
func jsonDiff(want, got []byte) ([]string, error) {
	var w, g any
	if err := json.Unmarshal(want, &w); err != nil {
		return nil, fmt.Errorf("want: %w", err)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		return nil, fmt.Errorf("got: %w", err)
	}
	var out []string
	diffValue("$", dropNulls(w), dropNulls(g), &out)
	return out, nil
}

func dropNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			if e == nil {
				continue
			}
			m[k] = dropNulls(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = dropNulls(e)
		}
		return a
	}
	return v
}

func diffValue(path string, w, g any, out *[]string) {
	switch wv := w.(type) {
	case map[string]any:
		gv, ok := g.(map[string]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: want object, got %s", path, compact(g)))
			return
		}
		keys := map[string]bool{}
		for k := range wv {
			keys[k] = true
		}
		for k := range gv {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			we, inW := wv[k]
			ge, inG := gv[k]
			switch {
			case !inG:
				*out = append(*out, fmt.Sprintf("%s.%s: missing (want %s)", path, k, compact(we)))
			case !inW:
				*out = append(*out, fmt.Sprintf("%s.%s: unexpected %s", path, k, compact(ge)))
			default:
				diffValue(path+"."+k, we, ge, out)
			}
		}
	case []any:
		gv, ok := g.([]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: want array, got %s", path, compact(g)))
			return
		}
		if len(wv) != len(gv) {
			*out = append(*out, fmt.Sprintf("%s: want %d elements, got %d", path, len(wv), len(gv)))
			return
		}
		for i := range wv {
			diffValue(fmt.Sprintf("%s[%d]", path, i), wv[i], gv[i], out)
		}
	default:
		if !reflect.DeepEqual(w, g) {
			*out = append(*out, fmt.Sprintf("%s: want %s, got %s", path, compact(w), compact(g)))
		}
	}
}

func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestJSONDiffCanFail(t *testing.T) {
	// The comparison used for the seed tests must see real differences
	// and only treat null as absent.
	cases := []struct {
		want, got string
		equal     bool
	}{
		{`{"a":1,"b":null}`, `{"a":1}`, true},
		{`{"a":1}`, `{"a":1,"b":null}`, true},
		{`{"a":{"x":[1,2]}}`, `{"a":{"x":[1,2]}}`, true},
		{`{"a":1}`, `{"a":2}`, false},
		{`{"a":1}`, `{"a":1,"b":0}`, false},
		{`{"a":[1,2]}`, `{"a":[2,1]}`, false},
		{`{"a":false}`, `{}`, false},
		{`{"a":""}`, `{}`, false},
		{`{"a":{"b":"x"}}`, `{"a":{"b":"y"}}`, false},
	}
	for _, c := range cases {
		d, err := jsonDiff([]byte(c.want), []byte(c.got))
		if err != nil {
			t.Fatal(err)
		}
		if (len(d) == 0) != c.equal {
			t.Errorf("jsonDiff(%s, %s) = %v, want equal=%v", c.want, c.got, d, c.equal)
		}
	}
}
