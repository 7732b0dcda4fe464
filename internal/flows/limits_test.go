package flows

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// growFlow appends 1 KiB to a variable at every timeout, forever.
var growFlow = `name: grow
variables:
  s: {type: string}
start: a
steps:
  a:
    timeout: 1s
    on:
      - event: timeout
        set: {s: '${vars.s + "` + strings.Repeat("x", 1024) + `"}'}
        goto: a
`

// TestVariableBound: a variable that grows past MaxVariableBytes fails
// the run, with an error naming it, instead of growing without end.
func TestVariableBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newEngineRig(t, growFlow, DefaultConfig())
		e := r.eng
		v, err := e.Start("grow", nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			if i > 2*MaxVariableBytes/1024 {
				t.Fatalf("the run is still running after %d appends of 1 KiB", i)
			}
			synctest.Wait()
			if got, _ := e.RunView(v.ID); got.Status != StatusRunning {
				v = got
				break
			}
			// Let the next timeout fire.
			time.Sleep(time.Second)
		}
		r.stop()
		if v.Status != StatusFailed || !strings.Contains(v.Error, "set s: the value is") || !strings.Contains(v.Error, "more than the 65536") {
			t.Fatalf("run %s: %q", v.Status, v.Error)
		}
		if n := len(v.Variables["s"].(string)); n > MaxVariableBytes {
			t.Errorf("variable kept %d bytes", n)
		}
	})
}
