package handlers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/problem"
	"github.com/botd/botd/internal/testkit"
)

const (
	inviteCall   = "ab6233a5-20b7-4c5e-bea2-ce56c9776429"
	inviteCall2  = "7531d31f-d10d-44de-802f-c569dbca451c"
	replacedCall = "a7ebfb2d-871e-419c-87af-27290b22e8db"
	ctxSeed      = "f2fa86af-3c51-4bc2-8fc0-475452d9764f"
)

func opCompleted(id string) func(v callstate.CallView) error {
	return func(v callstate.CallView) error {
		if len(v.Operations) != 1 {
			return fmt.Errorf("operations = %d", len(v.Operations))
		}
		op := v.Operations[0]
		if op.ID != id || op.Status != model.OpCompleted || op.ClientContext != ctxSeed || op.Type != "invite" {
			return fmt.Errorf("operation = %+v", op)
		}
		return nil
	}
}

func roster(ids ...string) func(v callstate.CallView) error {
	return func(v callstate.CallView) error {
		if len(v.Participants) != len(ids) {
			return fmt.Errorf("participants = %d, want %d", len(v.Participants), len(ids))
		}
		for i, p := range v.Participants {
			_, id := p.Info.Identity.Primary()
			if id == nil || id.ID != ids[i] {
				return fmt.Errorf("participant %d = %+v, want identity %s", i, id, ids[i])
			}
		}
		return nil
	}
}

func state(s model.CallState) func(v callstate.CallView) error {
	return func(v callstate.CallView) error {
		if v.State != s {
			return fmt.Errorf("state = %q, want %q", v.State, s)
		}
		return nil
	}
}

func sessions(n int) func(v callstate.CallView) error {
	return func(v callstate.CallView) error {
		if len(v.ContentSharingSessions) != n {
			return fmt.Errorf("sessions = %d, want %d", len(v.ContentSharingSessions), n)
		}
		return nil
	}
}

// TestEverySeedNotificationShowsInTheView posts each seed notification to
// the callback, alone, and reads the call back through the admin API.
func TestEverySeedNotificationShowsInTheView(t *testing.T) {
	type want struct {
		callID string
		check  func(v callstate.CallView) error
	}
	cases := map[string]want{
		"001_03_notification.json": {inviteCall, opCompleted("eec3812a-fdc3-4fb4-825c-a06c9f35414e")},
		"001_04_notification.json": {inviteCall, roster("278405a3-f568-4b3e-b684-009193463064")},
		"001_07_notification.json": {inviteCall2, opCompleted("")},
		"001_08_notification.json": {inviteCall2, roster("7e1b4346-85a6-4bdd-abe3-d11c5d420efe", "1e126418-44a0-4a94-a6f8-0efe1ad71acb")},
		"001_11_notification.json": {inviteCall, opCompleted("278405a3-f568-4b3e-b684-009193463064")},
		"001_12_notification.json": {replacedCall, roster("7e1b4346-85a6-4bdd-abe3-d11c5d420efe")},
		"001_15_notification.json": {inviteCall, opCompleted("eec3812a-fdc3-4fb4-825c-a06c9f35414e")},
		"001_16_notification.json": {inviteCall, roster("+12345678901")},
		"001_19_notification.json": {inviteCall, opCompleted("278405a3-f568-4b3e-b684-009193463064")},
		"001_20_notification.json": {inviteCall, roster("682b6c37-0729-4fab-ace6-d730d5d9137e")},
		"003_03_notification.json": {"2e1a0b00-2db4-4022-9570-243709c565ab", state(model.StateEstablishing)},
		"003_04_notification.json": {"2e1a0b00-b3c5-4b0f-99b3-c133bc1e6116", func(v callstate.CallView) error {
			if v.State != model.StateEstablished || v.Direction != "outgoing" {
				return fmt.Errorf("state %q direction %q", v.State, v.Direction)
			}
			return nil
		}},
		"003_05_notification.json": {"421f4c00-4436-4c3a-9d9a-c4924cf98e67", sessions(1)},
		"003_06_notification.json": {"421f4c00-4436-4c3a-9d9a-c4924cf98e67", sessions(1)},
		"003_07_notification.json": {"421f4c00-4436-4c3a-9d9a-c4924cf98e67", sessions(0)},
		"003_16_notification.json": {"2f1a1100-b174-40a0-aba7-0b405e01ed92", func(v callstate.CallView) error {
			if v.State != model.StateEstablishing || v.ChatInfo == nil || v.MeetingInfo == nil || v.MeetingInfo.Organizer.User.DisplayName != "Bob" {
				return fmt.Errorf("view %+v", v)
			}
			return nil
		}},
		"003_17_notification.json": {"2f1a1100-b174-40a0-aba7-0b405e01ed92", state(model.StateEstablished)},
		"003_18_notification.json": {"2f1a1100-b174-40a0-aba7-0b405e01ed92", roster("112f7296-5fa4-42ca-bae8-6a692b15d4b8", "2891555a-92ff-42e6-80fa-6e1300c6b5c6")},
		"003_19_notification.json": {"421f7700-f4ad-4ea9-a3fc-c1d2195675ad", func(v callstate.CallView) error {
			if err := roster("112f7296-5fa4-42ca-bae8-6a692b15d4b8")(v); err != nil {
				return err
			}
			if v.RosterSequenceNumber != 1 {
				return fmt.Errorf("rosterSequenceNumber = %d", v.RosterSequenceNumber)
			}
			return nil
		}},
	}
	files, _ := filepath.Glob(filepath.Join(testkit.SeedDir, "*_notification.json"))
	if len(files) == 0 {
		t.Fatal("no seed notifications found")
	}
	for _, f := range files {
		name := filepath.Base(f)
		w, ok := cases[name]
		if !ok && strings.HasPrefix(name, "004_") {
			// The 004 page repeats the 001 examples.
			w, ok = cases["001_"+strings.TrimPrefix(name, "004_")]
		}
		t.Run(name, func(t *testing.T) {
			if !ok {
				t.Fatalf("no expectation for seed %s", name)
			}
			r := newFakeRig(t, &fakeCalls{}, rigOptions{})
			body := testkit.Seed(t, name)
			if strings.HasSuffix(name, "_notification.json") && (strings.Contains(string(body), `"deleted"`) && strings.Contains(string(body), "Operation")) {
				// An operation botd sent on a call it knows: record it
				// first, as botd does before sending.
				r.mustNotify([]byte(fmt.Sprintf(`{"value":[{"changeType":"updated","resourceUrl":"/communications/calls/%s","resourceData":{"@odata.type":"#microsoft.graph.call","id":"%s","state":"established"}}]}`, w.callID, w.callID)))
				if err := r.store.TrackOperation(w.callID, callstate.OperationRecord{Type: "invite", ClientContext: ctxSeed}); err != nil {
					t.Fatal(err)
				}
			}
			if name == "003_06_notification.json" || name == "003_07_notification.json" {
				r.mustNotify(testkit.Seed(t, "003_05_notification.json"))
			}
			r.mustNotify(body)
			if err := w.check(r.view(w.callID)); err != nil {
				t.Fatal(err)
			}
			// The same notification again changes nothing.
			before := r.view(w.callID)
			r.mustNotify(body)
			after := r.view(w.callID)
			before.UpdatedAt, after.UpdatedAt = time.Time{}, time.Time{}
			b, _ := json.Marshal(before)
			a, _ := json.Marshal(after)
			if !bytes.Equal(a, b) {
				t.Fatalf("a duplicate changed the call:\nbefore %s\nafter  %s", b, a)
			}
		})
	}
}

func TestCallbackCountsEveryItem(t *testing.T) {
	r := newFakeRig(t, &fakeCalls{}, rigOptions{})
	body := []byte(`{"value":[
		{"changeType":"updated","resourceUrl":"/communications/calls/c-1","resourceData":{"@odata.type":"#microsoft.graph.call","state":"established","id":"c-1"}},
		{"changeType":"updated","resourceUrl":"/communications/calls/c-1","resourceData":{"@odata.type":"#microsoft.graph.call","state":"established","id":"c-1"}},
		{"changeType":"updated","resourceUrl":"/communications/calls/c-1","resourceData":{"@odata.type":"#microsoft.graph.call","state":"dancing","id":"c-1"}},
		{"changeType":"updated","resourceUrl":"/communications/calls/c-1/audioRoutingGroups/x","resourceData":{"@odata.type":"#microsoft.graph.audioRoutingGroup"}}
	]}`)
	rp := r.notify(body)
	if rp.status != http.StatusAccepted {
		t.Fatalf("status %d: %s", rp.status, rp.body)
	}
	var out callbackReply
	rp.decode(t, &out)
	if out.Accepted != 3 || len(out.Rejected) != 1 || out.Rejected[0].Index != 2 {
		t.Fatalf("reply = %+v", out)
	}
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"updated", "call", resultApplied}, 1},
		{[]string{"updated", "call", resultNoChange}, 1},
		{[]string{"invalid", "invalid", resultRejected}, 1},
		{[]string{"updated", "other", resultUnknown}, 1},
	} {
		if got := testutil.ToFloat64(r.metrics.notifications.WithLabelValues(c.labels...)); got != c.want {
			t.Errorf("notifications%v = %v, want %v", c.labels, got, c.want)
		}
	}
	if got := testutil.ToFloat64(r.metrics.callbackRequests.WithLabelValues("202")); got != 1 {
		t.Errorf("callback requests 202 = %v", got)
	}
	if v := r.view("c-1"); v.State != model.StateEstablished {
		t.Errorf("state = %s", v.State)
	}
}

// TestCallbackErrorsChangeNothing sends broken callbacks: each gets its
// status with a problem body, and no call appears.
func TestCallbackErrorsChangeNothing(t *testing.T) {
	r := newFakeRig(t, &fakeCalls{}, rigOptions{})
	good := testkit.Seed(t, "003_17_notification.json")
	huge := append([]byte(`{"value":[`), bytes.Repeat([]byte(" "), 2<<20)...)
	cases := []struct {
		name, method, ct string
		body             []byte
		status           int
	}{
		{"not json", http.MethodPost, "application/json", []byte("hello"), http.StatusBadRequest},
		{"wrong top-level type", http.MethodPost, "application/json", []byte(`[1,2]`), http.StatusBadRequest},
		{"wrong odata type", http.MethodPost, "application/json", []byte(`{"@odata.type":"#microsoft.graph.user","value":[]}`), http.StatusBadRequest},
		{"missing value", http.MethodPost, "application/json", []byte(`{"@odata.type":"#microsoft.graph.commsNotifications"}`), http.StatusBadRequest},
		{"null value", http.MethodPost, "application/json", []byte(`{"value":null}`), http.StatusBadRequest},
		{"truncated", http.MethodPost, "application/json", good[:len(good)/2], http.StatusBadRequest},
		{"too large", http.MethodPost, "application/json", huge, http.StatusRequestEntityTooLarge},
		{"text content type", http.MethodPost, "text/plain", good, http.StatusUnsupportedMediaType},
		{"no content type", http.MethodPost, "", good, http.StatusUnsupportedMediaType},
		{"form content type", http.MethodPost, "application/x-www-form-urlencoded", good, http.StatusUnsupportedMediaType},
		{"GET", http.MethodGet, "", nil, http.StatusMethodNotAllowed},
		{"PUT", http.MethodPut, "application/json", good, http.StatusMethodNotAllowed},
		{"DELETE", http.MethodDelete, "", nil, http.StatusMethodNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rp := do(t, tc.method, r.public.URL+"/api/calls", tc.ct, tc.body)
			if rp.status != tc.status {
				t.Fatalf("status %d, want %d: %s", rp.status, tc.status, rp.body)
			}
			p := rp.problem(t)
			if p.Detail == "" || p.Title == "" {
				t.Errorf("problem lacks detail: %+v", p)
			}
			if tc.status == http.StatusMethodNotAllowed && rp.header.Get("Allow") != http.MethodPost {
				t.Errorf("Allow = %q", rp.header.Get("Allow"))
			}
			if n := len(r.store.Calls()); n != 0 {
				t.Fatalf("a rejected body changed state: %d calls", n)
			}
			if got := testutil.ToFloat64(r.metrics.callbackRequests.WithLabelValues(fmt.Sprint(tc.status))); got == 0 {
				t.Errorf("status %d not counted", tc.status)
			}
		})
	}
}

// TestCallbackBodyLimitChunked: a body sent without Content-Length is
// bounded while it is read, as one with Content-Length is before.
func TestCallbackBodyLimitChunked(t *testing.T) {
	r := newFakeRig(t, &fakeCalls{}, rigOptions{})
	for _, size := range []int64{r.deps.MaxBody + 1, 2 << 20} {
		body := io.MultiReader(strings.NewReader(`{"value":[`), io.LimitReader(neverEnding(' '), size))
		req, err := http.NewRequest(http.MethodPost, r.public.URL+"/api/calls", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge || req.ContentLength != 0 || !bytes.Contains(b, []byte(fmt.Sprintf("exceeds %d bytes", r.deps.MaxBody))) {
			t.Fatalf("chunked body of %d bytes: %d %s", size, res.StatusCode, b)
		}
	}
	if n := len(r.store.Calls()); n != 0 {
		t.Fatalf("a refused body changed state: %d calls", n)
	}
}

// neverEnding is an endless run of one byte.
type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

func TestLivezOnBothListeners(t *testing.T) {
	r := newFakeRig(t, &fakeCalls{}, rigOptions{})
	for _, u := range []string{r.public.URL, r.admin.URL} {
		if rp := do(t, http.MethodGet, u+"/livez", "", nil); rp.status != http.StatusOK {
			t.Errorf("%s/livez = %d", u, rp.status)
		}
	}
	// The admin API is not on the public listener.
	if rp := do(t, http.MethodGet, r.public.URL+"/v1/calls", "", nil); rp.status != http.StatusNotFound {
		t.Errorf("public /v1/calls = %d", rp.status)
	}
	if rp := do(t, http.MethodGet, r.public.URL+"/metrics", "", nil); rp.status != http.StatusNotFound {
		t.Errorf("public /metrics = %d", rp.status)
	}
}

func TestReadyz(t *testing.T) {
	r := newFakeRig(t, &fakeCalls{}, rigOptions{})
	if rp := r.adminDo(http.MethodGet, "/readyz", nil); rp.status != http.StatusOK {
		t.Fatalf("readyz = %d: %s", rp.status, rp.body)
	}
	r.deps.Ready.Set(false)
	if rp := r.adminDo(http.MethodGet, "/readyz", nil); rp.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz while shutting down = %d", rp.status)
	}
	if got := testutil.ToFloat64(r.metrics.ready); got != 0 {
		t.Errorf("botd_ready = %v", got)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	r := newFakeRig(t, &fakeCalls{}, rigOptions{})
	r.mustNotify(testkit.Seed(t, "003_17_notification.json"))
	rp := r.adminDo(http.MethodGet, "/metrics", nil)
	if rp.status != http.StatusOK {
		t.Fatalf("/metrics = %d", rp.status)
	}
	for _, name := range []string{"botd_notifications_total", "botd_callback_requests_total", "botd_callback_duration_seconds", "botd_calls", "botd_call_participants"} {
		if !bytes.Contains(rp.body, []byte(name)) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

var _ = os.ReadFile

// TestQuirksToleratedAndCounted: Microsoft's own variants (a path without
// its '/', result codes as strings, a data id that disagrees with the
// path) apply to the path's call, and each is counted and logged at debug.
func TestQuirksToleratedAndCounted(t *testing.T) {
	r := newFakeRig(t, &fakeCalls{}, rigOptions{})
	body := []byte(`{"value":[{"changeType":"updated","resourceUrl":"communications/calls/q-1","resourceData":{"@odata.type":"#microsoft.graph.call","id":"q-2","state":"established","resultInfo":{"code":"200","subcode":"5001"}}}]}`)
	r.mustNotify(body)
	v := r.view("q-1")
	if v.State != model.StateEstablished || v.ResultInfo == nil || v.ResultInfo.Subcode != 5001 {
		t.Fatalf("view %+v", v)
	}
	if rp := r.adminDo(http.MethodGet, "/v1/calls/q-2", nil); rp.status != http.StatusNotFound {
		t.Fatalf("the data's id was tracked: %d", rp.status)
	}
	for _, q := range []string{"path_without_slash", "number_as_string", "id_mismatch"} {
		if got := testutil.ToFloat64(r.deps.Metrics.quirks.WithLabelValues(q)); got != 1 {
			t.Errorf("quirk %s counted %v, want 1", q, got)
		}
		if !strings.Contains(r.logs.String(), `"quirk":"`+q+`"`) {
			t.Errorf("quirk %s not logged", q)
		}
	}
	if got := testutil.ToFloat64(r.deps.Metrics.quirks.WithLabelValues("string_as_number")); got != 0 {
		t.Errorf("string_as_number counted %v", got)
	}
}

// TestMicrosoftMediaNotificationsApply: every notification example of
// Microsoft's pages for the media and participant actions is accepted
// whole by the callback and applied to its call: operations finish with
// their completionReason, a key press lands in the call's tones.
func TestMicrosoftMediaNotificationsApply(t *testing.T) {
	r := newFakeRig(t, &fakeCalls{}, rigOptions{})
	files, _ := filepath.Glob(filepath.Join("..", "notify", "testdata", "media", "*.json"))
	if len(files) < 15 {
		t.Fatalf("%d media examples, want 15", len(files))
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rp := r.notify(body)
		var reply callbackReply
		rp.decode(t, &reply)
		if rp.status != http.StatusAccepted || len(reply.Rejected) != 0 || reply.Accepted == 0 {
			t.Errorf("%s: %d %s", filepath.Base(f), rp.status, rp.body)
		}
	}
	var reasons, tones []string
	for _, c := range r.store.Calls() {
		v := r.view(c.ID)
		for _, op := range v.Operations {
			reasons = append(reasons, op.Type+":"+string(op.Status)+":"+op.CompletionReason)
		}
		for _, tn := range v.Tones {
			tones = append(tones, string(tn.Tone))
		}
	}
	got := strings.Join(reasons, ",")
	// The sendDtmfTones page shows three endings of one operation: the
	// first wins, the others are repeats. The stopHoldMusic page reuses the
	// startHoldMusic page's call and operation ids: a repeat too.
	for _, want := range []string{"playPrompt:completed:", "sendDtmfTones:completed:completedSuccessfully",
		"recordResponse:failed:operationCanceled", "startHoldMusic:completed:"} {
		if !strings.Contains(got, want) {
			t.Errorf("completion reasons %s lack %s", got, want)
		}
	}
	if strings.Join(tones, ",") != "tone1" {
		t.Errorf("tones %v, want the subscribeToTone page's tone1", tones)
	}
}

// TestCallbackDeferredWhileRecovering: while botd recovers its calls at
// start, a callback is answered 503 with Retry-After, counted as deferred,
// and applies nothing; once recovery is done the same body is accepted.
func TestCallbackDeferredWhileRecovering(t *testing.T) {
	var recovering atomic.Bool
	recovering.Store(true)
	r := newFakeRig(t, &fakeCalls{}, rigOptions{recovering: &recovering})
	body := testkit.Seed(t, "001_03_notification.json")
	rp := r.notify(body)
	if rp.status != http.StatusServiceUnavailable || rp.header.Get("Retry-After") != recoveryRetryAfter {
		t.Fatalf("while recovering: %d, Retry-After %q: %s", rp.status, rp.header.Get("Retry-After"), rp.body)
	}
	if p := rp.problem(t); p.Code != problem.Unavailable {
		t.Errorf("problem %+v", p)
	}
	if n := len(r.store.Calls()); n != 0 {
		t.Fatalf("%d calls tracked from a deferred callback", n)
	}
	if got := testkit.Metric(t, r.reg, "botd_callback_documents_total", map[string]string{"result": "deferred"}); got != 1 {
		t.Errorf("deferred = %v", got)
	}
	recovering.Store(false)
	if rp := r.notify(body); rp.status != http.StatusAccepted {
		t.Fatalf("after recovery: %d %s", rp.status, rp.body)
	}
}
