package automation

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsExportedFromStart: every action's series is on the registry,
// at 0, before the first action.
func TestMetricsExportedFromStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	newMetrics(reg)
	for name, want := range map[string]int{
		"botd_automation_actions_total":           len(actionKinds) * 4,
		"botd_automation_refused_total":           len(actionKinds) * 2,
		"botd_automation_action_duration_seconds": len(actionKinds),
		"botd_automation_queue_length":            1,
	} {
		got, err := testutil.GatherAndCount(reg, name)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: %d series before any action, want %d", name, got, want)
		}
	}
}
