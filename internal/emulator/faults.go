package emulator

import (
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// FaultKind names a fault the emulator can inject on its own, at a rate or
// for the next N chances, on top of the faults scripted per route with
// Script and SetFault.
type FaultKind string

// Injectable faults. Notification faults are drawn per call, from the
// call's own seeded stream, in the order its notifications are built.
const (
	// FaultReorder holds a notification until the call's next one has
	// been queued, so the two arrive swapped (as Graph's establishing and
	// established may). A held notification with no successor is sent
	// after Timing.ReorderHold.
	FaultReorder FaultKind = "reorder"
	// FaultDuplicate posts a notification twice.
	FaultDuplicate FaultKind = "duplicate"
	// FaultDelay holds a notification for Timing.FaultDelay before posting
	// it; the call's later notifications wait behind it.
	FaultDelay FaultKind = "delay"
	// FaultRosterGap skips a delta roster sequenceNumber.
	FaultRosterGap FaultKind = "roster_gap"
	// FaultOperation makes an invite operation fail (status failed,
	// resultInfo 500/9999).
	FaultOperation FaultKind = "operation_failed"
	// FaultThrottle answers a Graph request 429 with Retry-After
	// (Timing.RetryAfter), without processing it.
	FaultThrottle FaultKind = "throttle"
	// FaultUnavailable answers a Graph request 503, without processing it.
	FaultUnavailable FaultKind = "unavailable"
	// FaultToken answers a token request 503 (temporarily_unavailable).
	FaultToken FaultKind = "token"
)

// FaultKinds lists every injectable fault.
var FaultKinds = []FaultKind{FaultReorder, FaultDuplicate, FaultDelay, FaultRosterGap, FaultOperation,
	FaultThrottle, FaultUnavailable, FaultToken}

// faultKindList is FaultKinds as a plain comma list, for error texts.
func faultKindList() string {
	names := make([]string, len(FaultKinds))
	for i, k := range FaultKinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// FaultRule says how often a fault strikes.
type FaultRule struct {
	// Next makes the next N chances fault for certain; they are used up
	// before Probability applies.
	Next int
	// Probability is the chance, in [0, 1], that any other chance faults.
	// The draw is seeded.
	Probability float64
}

type faultState struct {
	rule     FaultRule
	injected int
}

// SetFaultRule replaces the rule of a fault kind; the zero FaultRule turns
// it off.
func (s *Server) SetFaultRule(k FaultKind, r FaultRule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultLocked(k).rule = r
}

// InjectNext makes the next n chances of a fault kind fault, in addition
// to any pending ones.
func (s *Server) InjectNext(k FaultKind, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultLocked(k).rule.Next += n
}

// faultLocked returns the state of a fault kind, made on first use.
func (s *Server) faultLocked(k FaultKind) *faultState {
	f := s.faults[k]
	if f == nil {
		f = &faultState{}
		s.faults[k] = f
	}
	return f
}

// ClearFaultRules turns every injected fault off; the counts stay.
func (s *Server) ClearFaultRules() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		f.rule = FaultRule{}
	}
}

// FaultsInjected counts the faults of a kind injected so far.
func (s *Server) FaultsInjected(k FaultKind) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.faults[k]; f != nil {
		return f.injected
	}
	return 0
}

// injectLocked decides whether this chance of fault k faults, drawing
// from rng only when a probability is set, so that streams do not shift
// when faults are off. Callers hold s.mu.
func (s *Server) injectLocked(k FaultKind, rng *mrand.Rand) bool {
	f := s.faults[k]
	if f == nil {
		return false
	}
	switch {
	case f.rule.Next > 0:
		f.rule.Next--
	case f.rule.Probability > 0 && rng.Float64() < f.rule.Probability:
	default:
		return false
	}
	f.injected++
	return true
}

// injectedFaultLocked returns the HTTP fault to answer a request to route
// with, if an injected one strikes. Callers hold s.mu.
func (s *Server) injectedFaultLocked(route Route) (Fault, bool) {
	switch {
	case route == RouteToken:
		if s.injectLocked(FaultToken, s.faultRNG) {
			return Fault{Status: http.StatusServiceUnavailable}, true
		}
	case route.graph():
		if s.injectLocked(FaultThrottle, s.faultRNG) {
			secs := int(s.opts.Timing.RetryAfter.Seconds())
			return Fault{Status: http.StatusTooManyRequests, RetryAfter: strconv.Itoa(secs)}, true
		}
		if s.injectLocked(FaultUnavailable, s.faultRNG) {
			return Fault{Status: http.StatusServiceUnavailable}, true
		}
	}
	return Fault{}, false
}

// ParseFaults reads fault rules written as "kind=probability" or
// "kind=probability/next", comma separated, for example
// "reorder=0.2,duplicate=0.1,throttle=0/2". An empty string is no faults.
func ParseFaults(s string) (map[FaultKind]FaultRule, error) {
	out := map[FaultKind]FaultRule{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("fault %q: want kind=probability", part)
		}
		kind := FaultKind(strings.TrimSpace(name))
		if !slices.Contains(FaultKinds, kind) {
			return nil, fmt.Errorf("fault %q: unknown kind (known: %s)", name, faultKindList())
		}
		if _, dup := out[kind]; dup {
			return nil, fmt.Errorf("fault %q given twice", kind)
		}
		prob, next, hasNext := strings.Cut(strings.TrimSpace(val), "/")
		var r FaultRule
		p, err := strconv.ParseFloat(prob, 64)
		if err != nil || p < 0 || p > 1 || p != p {
			return nil, fmt.Errorf("fault %q: probability %q is not a number in [0, 1]", kind, prob)
		}
		r.Probability = p
		if hasNext {
			n, err := strconv.Atoi(next)
			if err != nil || n < 0 || n > 1_000_000 {
				return nil, fmt.Errorf("fault %q: next %q is not a count", kind, next)
			}
			r.Next = n
		}
		out[kind] = r
	}
	return out, nil
}
