package callstate

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/botd/botd/internal/model"
)

func established(t *testing.T, s *Store, id string) {
	t.Helper()
	_, err := s.TrackCall(&model.Call{ID: id, State: model.StateEstablished})
	must(t, err)
}

func TestOperationLifecycle(t *testing.T) {
	clk := newClock()
	s := newStore(t, Config{Now: clk.Now})
	established(t, s, "c1")
	must(t, s.TrackOperation("c1", OperationRecord{Type: "playPrompt", ClientContext: "cc1"}))
	if got := testutil.ToFloat64(s.m.operations.WithLabelValues("playPrompt", "sent")); got != 1 {
		t.Errorf("operations{sent} = %v", got)
	}
	cs := s.OperationSent("c1", "cc1", &model.Operation{ID: "op1", Status: "Running"})
	if len(cs) != 0 {
		t.Errorf("running answer: %s", kindsString(cs))
	}
	if op := mustCall(t, s, "c1").Operations[0]; op.ID != "op1" || op.Status != model.OpRunning {
		t.Errorf("after answer: %+v", op)
	}
	clk.Advance(1500 * time.Millisecond)
	cs = mustApply(t, s, opEvent("c1", model.ChangeUpdated, &model.Operation{
		ODataType: "#microsoft.graph.playPromptOperation", ID: "op1", Status: model.OpFailed,
		ResultInfo: &model.ResultInfo{Code: 500, Subcode: 8510, Message: "media"}}))
	if got, want := kindsString(cs), "operation_failed"; got != want {
		t.Fatalf("failed notification: %s, want %s", got, want)
	}
	op := cs[0].Operation
	if op.Status != model.OpFailed || op.ResultInfo == nil || op.ResultInfo.Subcode != 8510 || op.CompletedAt.IsZero() {
		t.Errorf("failed op = %+v", op)
	}
	// Final is final: a late running and a repeated failure change nothing.
	cs = mustApply(t, s,
		opEvent("c1", model.ChangeUpdated, &model.Operation{ID: "op1", Status: model.OpRunning}),
		opEvent("c1", model.ChangeDeleted, &model.Operation{ID: "op1", Status: model.OpCompleted}))
	if len(cs) != 0 {
		t.Errorf("after final: %s", kindsString(cs))
	}
	if ignored(s, reasonOperationFinal) != 1 || ignored(s, reasonDuplicateOperation) != 1 {
		t.Errorf("operation_final %d, duplicate_operation %d", ignored(s, reasonOperationFinal), ignored(s, reasonDuplicateOperation))
	}
	if op := mustCall(t, s, "c1").Operations[0]; op.Status != model.OpFailed {
		t.Errorf("status = %s", op.Status)
	}
	if got := testutil.ToFloat64(s.m.operations.WithLabelValues("playPrompt", "failed")); got != 1 {
		t.Errorf("operations{failed} = %v", got)
	}
	if n := histCount(t, s.m.opLatency); n != 1 {
		t.Errorf("latency samples = %d, want 1", n)
	}
}

func TestOperationSentAfterNotification(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	established(t, s, "c1")
	must(t, s.TrackOperation("c1", OperationRecord{Type: "invite", ClientContext: "cc"}))
	// Graph's notification (with the id) beats its HTTP answer.
	cs := mustApply(t, s, opEvent("c1", model.ChangeDeleted, &model.Operation{ID: "op1", Status: model.OpCompleted, ClientContext: "cc"}))
	if got := kindsString(cs); got != "operation_completed" {
		t.Fatalf("notification: %s", got)
	}
	if cs := s.OperationSent("c1", "cc", &model.Operation{ID: "op1", Status: model.OpRunning}); len(cs) != 0 {
		t.Errorf("answer after completion: %s", kindsString(cs))
	}
	ops := mustCall(t, s, "c1").Operations
	if len(ops) != 1 || ops[0].Status != model.OpCompleted || ops[0].Type != "invite" || !ops[0].SentByBot {
		t.Errorf("operations = %+v", ops)
	}
}

// A notification for an operation recorded before botd tracked it: the
// answer folds botd's record into it.
func TestOperationSentFoldsPlaceholder(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	established(t, s, "c1")
	mustApply(t, s, opEvent("c1", model.ChangeUpdated, &model.Operation{ODataType: "#microsoft.graph.commsOperation", ID: "op1", Status: model.OpRunning}))
	must(t, s.TrackOperation("c1", OperationRecord{Type: "transfer", ClientContext: "cc"}))
	s.OperationSent("c1", "cc", &model.Operation{ID: "op1", Status: model.OpRunning})
	ops := mustCall(t, s, "c1").Operations
	if len(ops) != 1 || ops[0].ID != "op1" || ops[0].Type != "transfer" || !ops[0].SentByBot || ops[0].ClientContext != "cc" {
		t.Errorf("operations = %+v", ops)
	}
}

func TestOperationSentWithoutBodyAndUntracked(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	established(t, s, "c1")
	must(t, s.TrackOperation("c1", OperationRecord{Type: "answer", ClientContext: "a"}))
	cs := s.OperationSent("c1", "a", nil)
	if got := kindsString(cs); got != "operation_completed" {
		t.Errorf("202 without body: %s", got)
	}
	// An answer for an operation never tracked is recorded.
	cs = s.OperationSent("c1", "b", &model.Operation{ODataType: "#microsoft.graph.muteParticipantOperation", ID: "op2", Status: model.OpCompleted})
	if got := kindsString(cs); got != "operation_completed" || cs[0].Operation.Type != "mute" {
		t.Errorf("untracked answer: %s %+v", got, cs)
	}
	if s.OperationSent("nope", "a", nil) != nil {
		t.Error("unknown call")
	}
}

func TestFailOperation(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now})
	established(t, s, "c1")
	must(t, s.TrackOperation("c1", OperationRecord{Type: "invite", ClientContext: "cc"}))
	cs := s.FailOperation("c1", "cc", &model.ResultInfo{Code: 403, Message: "forbidden"}, "graph_error")
	if got := kindsString(cs); got != "operation_failed" {
		t.Fatalf("FailOperation: %s", got)
	}
	if op := cs[0].Operation; op.FailureReason != "graph_error" || op.ResultInfo.Code != 403 || cs[0].Reason != "graph_error" {
		t.Errorf("op = %+v", op)
	}
	if cs := s.FailOperation("c1", "cc", nil, "again"); len(cs) != 0 {
		t.Errorf("second FailOperation: %s", kindsString(cs))
	}
	if err := s.TrackOperation("nope", OperationRecord{Type: "invite"}); !errors.Is(err, ErrUnknownCall) {
		t.Errorf("TrackOperation on unknown call: %v", err)
	}
}

func TestMaxOperationsPerCall(t *testing.T) {
	s := newStore(t, Config{Now: newClock().Now, MaxOperationsPerCall: 2})
	established(t, s, "c1")
	must(t, s.TrackOperation("c1", OperationRecord{ID: "op1", Type: "invite"}))
	must(t, s.TrackOperation("c1", OperationRecord{ID: "op2", Type: "invite"}))
	if err := s.TrackOperation("c1", OperationRecord{ID: "op3", Type: "invite"}); !errors.Is(err, ErrTooManyOperations) {
		t.Fatalf("third pending op: %v", err)
	}
	// Idempotent for a known id.
	must(t, s.TrackOperation("c1", OperationRecord{ID: "op2", Type: "invite"}))
	// An unknown operation's notification is refused too, and counted.
	mustApply(t, s, opEvent("c1", model.ChangeUpdated, &model.Operation{ID: "opX", Status: model.OpRunning}))
	if ignored(s, reasonTooManyOperations) != 2 {
		t.Errorf("too_many_operations = %d, want 2", ignored(s, reasonTooManyOperations))
	}
	mustApply(t, s, opEvent("c1", model.ChangeDeleted, &model.Operation{ID: "op1", Status: model.OpCompleted}))
	must(t, s.TrackOperation("c1", OperationRecord{ID: "op3", Type: "invite"}))
	var ids []string
	for _, op := range mustCall(t, s, "c1").Operations {
		ids = append(ids, op.ID)
	}
	if len(ids) != 2 || ids[0] != "op2" || ids[1] != "op3" {
		t.Errorf("operations = %v, want the finished op1 evicted", ids)
	}
}

// Run fails an operation with no result after OperationTimeout; the
// OperationFailed goes to Sink. synctest's clock drives Run's ticker.
func TestOperationTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec sinkRecorder
		s, err := New(testConfig(Config{OperationTimeout: 2 * time.Minute}), zerolog.Nop(), nil)
		if err == nil {
			s.Observe(rec.sink)
		}
		must(t, err)
		established(t, s, "c1")
		must(t, s.TrackOperation("c1", OperationRecord{ID: "op1", Type: "invite"}))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()

		time.Sleep(2*time.Minute - time.Second)
		synctest.Wait()
		if op := mustCall(t, s, "c1").Operations[0]; op.Status.Final() {
			t.Fatalf("timed out early: %+v", op)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		op := mustCall(t, s, "c1").Operations[0]
		if op.Status != model.OpFailed || op.FailureReason != "timeout" {
			t.Errorf("op = %+v", op)
		}
		var failed []Change
		for _, c := range rec.all() {
			if c.Kind == OperationFailed {
				failed = append(failed, c)
			}
		}
		if len(failed) != 1 || failed[0].Reason != "timeout" || failed[0].Event != -1 {
			t.Errorf("sink got %+v", failed)
		}
		if got := testutil.ToFloat64(s.m.operations.WithLabelValues("invite", "timeout")); got != 1 {
			t.Errorf("operations{timeout} = %v", got)
		}
		// The result comes after all: final is final.
		if cs := mustApply(t, s, opEvent("c1", model.ChangeDeleted, &model.Operation{ID: "op1", Status: model.OpCompleted})); len(cs) != 0 {
			t.Errorf("late result: %s", kindsString(cs))
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

// TestIDlessOperationRepeated: invite example 2's operation notification
// has no id; delivered twice, it finishes the tracked operation once and
// does not become a second operation.
func TestIDlessOperationRepeated(t *testing.T) {
	s := newStore(t, Config{})
	established(t, s, "c1")
	must(t, s.TrackOperation("c1", OperationRecord{Type: "invite", ClientContext: "cc-1"}))
	s.OperationSent("c1", "cc-1", &model.Operation{ID: "op-1", Status: model.OpRunning, ClientContext: "cc-1"})
	ev := opEvent("c1", model.ChangeDeleted, &model.Operation{Status: model.OpCompleted, ClientContext: "cc-1"})
	ev.Path.SubID = "participants"
	if got := kindsString(mustApply(t, s, ev)); got != "operation_completed" {
		t.Fatalf("first delivery: %s", got)
	}
	if got := kindsString(mustApply(t, s, ev)); got != "" {
		t.Fatalf("repeat: %s", got)
	}
	v := mustCall(t, s, "c1")
	if len(v.Operations) != 1 || v.Operations[0].ID != "op-1" || v.Operations[0].Status != model.OpCompleted {
		t.Fatalf("operations = %+v", v.Operations)
	}
}
