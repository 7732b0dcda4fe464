package automation

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsExportedFromStart: every action's series is on the registry,
// at 0, before the first action.
func TestMetricsExportedFromStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	newMetrics(reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, mf := range mfs {
		got[mf.GetName()] = len(mf.GetMetric())
	}
	for name, want := range map[string]int{
		"botd_automation_actions_total":           len(actionKinds) * 4,
		"botd_automation_refused_total":           len(actionKinds) * 2,
		"botd_automation_action_duration_seconds": len(actionKinds),
		"botd_automation_queue_length":            1,
	} {
		if got[name] != want {
			t.Errorf("%s: %d series before any action, want %d", name, got[name], want)
		}
	}
}
