package flows

import (
	"fmt"
	"net/url"
	"path"
	"sort"
	"strings"

	"cel.dev/cel-go/cel"
	"go.yaml.in/yaml/v3"
)

// Actions. Each outbound one is an action of the calls service.
const (
	actCreateCall            = "createCall"
	actInvite                = "invite"
	actAnswer                = "answer"
	actReject                = "reject"
	actRedirect              = "redirect"
	actTransfer              = "transfer"
	actHangup                = "hangup"
	actPlayPrompt            = "playPrompt"
	actRecordResponse        = "recordResponse"
	actSubscribeToTone       = "subscribeToTone"
	actSendDtmfTones         = "sendDtmfTones"
	actCancelMediaProcessing = "cancelMediaProcessing"
	actMute                  = "mute"
	actUnmute                = "unmute"
	actRemoveParticipant     = "removeParticipant"
	actStartHoldMusic        = "startHoldMusic"
	actStopHoldMusic         = "stopHoldMusic"
	actUpdateRecordingStatus = "updateRecordingStatus"
	actSet                   = "set"
	actStartFlow             = "startFlow"
	actEnd                   = "end"
	actNotify                = "notify"
)

// argKind is what an action argument takes.
type argKind uint8

const (
	aCall     argKind = iota + 1 // a call name, or ${expr} giving a call id
	aName                        // a literal name
	aString                      // a string
	aStrings                     // a string or a list of strings
	aInt                         // an int
	aBool                        // a bool
	aDuration                    // a duration
	aAny                         // any value (a Graph body, a JSON body)
	aParams                      // startFlow parameters: a mapping
)

type argSpec struct {
	name     string
	kind     argKind
	required bool
}

// actionSpecs lists every action and its arguments. "call" defaults to the
// main call; "body" is the Graph request body, which the other arguments
// complete.
var actionSpecs = map[string][]argSpec{
	actCreateCall: {{"as", aName, true}, {"target", aStrings, false}, {"joinMeetingId", aString, false},
		{"passcode", aString, false}, {"subject", aString, false}, {"tenantId", aString, false}, {"body", aAny, false}},
	actInvite: {{"call", aCall, false}, {"target", aStrings, false}, {"replacesCall", aCall, false},
		{"participantId", aString, false}, {"body", aAny, false}},
	actAnswer:     {{"call", aCall, false}, {"body", aAny, false}},
	actReject:     {{"call", aCall, false}, {"reason", aString, false}},
	actRedirect:   {{"call", aCall, false}, {"target", aStrings, false}, {"body", aAny, false}},
	actTransfer:   {{"call", aCall, false}, {"target", aString, false}, {"body", aAny, false}},
	actHangup:     {{"call", aCall, false}},
	actPlayPrompt: {{"call", aCall, false}, {"prompt", aStrings, false}, {"body", aAny, false}},
	actRecordResponse: {{"call", aCall, false}, {"prompt", aStrings, false}, {"maxRecordDurationInSeconds", aInt, false},
		{"maxSilenceTimeoutInSeconds", aInt, false}, {"initialSilenceTimeoutInSeconds", aInt, false},
		{"playBeep", aBool, false}, {"bargeInAllowed", aBool, false}, {"stopTones", aStrings, false}, {"body", aAny, false}},
	actSubscribeToTone:       {{"call", aCall, false}},
	actSendDtmfTones:         {{"call", aCall, false}, {"tones", aString, true}, {"delayBetweenTonesMs", aInt, false}},
	actCancelMediaProcessing: {{"call", aCall, false}},
	actMute:                  {{"call", aCall, false}, {"participant", aString, false}},
	actUnmute:                {{"call", aCall, false}},
	actRemoveParticipant:     {{"call", aCall, false}, {"participant", aString, true}},
	actStartHoldMusic:        {{"call", aCall, false}, {"participant", aString, true}, {"prompt", aString, false}},
	actStopHoldMusic:         {{"call", aCall, false}, {"participant", aString, true}},
	actUpdateRecordingStatus: {{"call", aCall, false}, {"status", aString, true}},
	actStartFlow:             {{"flow", aName, true}, {"as", aName, true}, {"parameters", aParams, false}},
	actEnd:                   {{"status", aName, false}, {"error", aString, false}},
	actNotify: {{"url", aString, true}, {"body", aAny, false}, {"timeout", aDuration, false},
		{"retries", aInt, false}},
	// set takes variable names, not arguments.
	actSet: nil,
}

// Actions lists every action name, sorted.
func Actions() []string {
	out := make([]string, 0, len(actionSpecs))
	for k := range actionSpecs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// callActions are the outbound actions on a call, which name it by call:.
func isCallAction(kind string) bool {
	for _, a := range actionSpecs[kind] {
		if a.name == "call" {
			return true
		}
	}
	return false
}

// action is a compiled action.
type action struct {
	kind string
	pos  Pos
	args map[string]*valueNode
	// call is the call a call action acts on: a name (callName) or an
	// expression giving its id (callExpr). Also replacesCall's.
	callName  string
	callExpr  *valueNode
	replName  string
	replExpr  *valueNode
	as        string
	flow      string
	flowPos   Pos
	params    []namedValue
	set       []namedValue
	endStatus string
}

// maxActions bounds a step's actions.
const maxActions = 32

func (c *compiler) actions(n *yaml.Node, where string) []*action {
	if n.Kind != yaml.SequenceNode {
		c.l.errf(c.l.pos(n), "%s: actions must be a list, got %s", where, kindName(n))
		return nil
	}
	if len(n.Content) > maxActions {
		c.l.errf(c.l.pos(n), "%s: more than %d actions", where, maxActions)
	}
	var out []*action
	for _, an := range n.Content {
		if a := c.action(an, where); a != nil {
			out = append(out, a)
		}
	}
	return out
}

func (c *compiler) action(n *yaml.Node, where string) *action {
	p := c.l.pos(n)
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		c.l.errf(p, "%s: an action is a mapping with one key, the action's name (one of %s)", where, strings.Join(Actions(), ", "))
		return nil
	}
	k, v := n.Content[0], n.Content[1]
	specs, ok := actionSpecs[k.Value]
	if !ok {
		c.l.errf(c.l.pos(k), "%s: unknown action %q%s (known: %s)", where, k.Value, suggest(k.Value, Actions()), strings.Join(Actions(), ", "))
		return nil
	}
	a := &action{kind: k.Value, pos: c.l.pos(k), args: map[string]*valueNode{}}
	what := where + " " + a.kind
	if a.kind == actSet {
		a.set = c.sets(v, what)
		return a
	}
	if v.Tag == "!!null" {
		v = &yaml.Node{Kind: yaml.MappingNode, Line: v.Line, Column: v.Column}
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.name
	}
	fs, ok := c.l.fields(v, what, names...)
	if !ok {
		return nil
	}
	for _, s := range specs {
		an := fs[s.name]
		if an == nil {
			if s.required {
				c.l.errf(a.pos, "%s: %s is required", what, s.name)
			}
			continue
		}
		aw := what + " " + s.name
		switch s.kind {
		case aName:
			name, ok := c.l.str(an, aw)
			if !ok {
				continue
			}
			switch s.name {
			case "as":
				if !identPattern.MatchString(name) {
					c.l.errf(c.l.pos(an), "%s: %q is not a name usable in expressions", aw, name)
				}
				a.as = name
			case "flow":
				a.flow, a.flowPos = name, c.l.pos(an)
			case "status":
				if name != StatusCompleted && name != StatusFailed {
					c.l.errf(c.l.pos(an), "%s: must be completed or failed, got %q", aw, name)
				}
				a.endStatus = name
			}
		case aCall:
			name, expr := c.callRef(an, aw)
			if s.name == "replacesCall" {
				a.replName, a.replExpr = name, expr
			} else {
				a.callName, a.callExpr = name, expr
			}
		case aParams:
			for _, kv := range c.l.pairs(an, aw) {
				a.params = append(a.params, namedValue{name: kv[0].Value, v: c.value(kv[1], aw+"."+kv[0].Value, anyType)})
			}
		default:
			a.args[s.name] = c.value(an, aw, argType(s.kind))
		}
	}
	if isCallAction(a.kind) && a.callName == "" && a.callExpr == nil {
		a.callName = "call"
	}
	c.checkAction(a, fs, what)
	return a
}

func argType(k argKind) *cel.Type {
	switch k {
	case aString:
		return stringType
	case aInt:
		return cel.IntType
	case aBool:
		return boolType
	case aDuration:
		return durationType
	}
	return anyType
}

// callRef reads a call argument: a call name the flow defines, or ${expr}
// giving a call's id.
func (c *compiler) callRef(n *yaml.Node, what string) (string, *valueNode) {
	s, ok := c.l.str(n, what)
	if !ok {
		return "", nil
	}
	if strings.Contains(s, "${") {
		return "", c.value(n, what, stringType)
	}
	if !c.sc.calls[s] {
		c.l.errf(c.l.pos(n), "%s: unknown call %q%s (the flow's calls: %s; or ${expr} for a call id)", what, s, suggest(s, keys(c.sc.calls)), strings.Join(keys(c.sc.calls), ", "))
	}
	return s, nil
}

// checkAction checks rules between an action's arguments.
func (c *compiler) checkAction(a *action, fs map[string]*yaml.Node, what string) {
	has := func(k string) bool { return fs[k] != nil }
	switch a.kind {
	case actCreateCall:
		if !has("target") && !has("joinMeetingId") && !has("body") {
			c.l.errf(a.pos, "%s: give target, joinMeetingId or body", what)
		}
		if has("target") && has("joinMeetingId") {
			c.l.errf(c.l.pos(fs["joinMeetingId"]), "%s: target and joinMeetingId exclude each other", what)
		}
		if has("passcode") && !has("joinMeetingId") {
			c.l.errf(c.l.pos(fs["passcode"]), "%s: passcode needs joinMeetingId", what)
		}
	case actInvite:
		if !has("target") && !has("body") && !has("participantId") {
			c.l.errf(a.pos, "%s: give target, participantId or body", what)
		}
	case actRedirect:
		if !has("target") && !has("body") {
			c.l.errf(a.pos, "%s: give target or body", what)
		}
	case actTransfer:
		if !has("target") && !has("body") {
			c.l.errf(a.pos, "%s: give target or body", what)
		}
	case actPlayPrompt:
		if !has("prompt") && !has("body") {
			c.l.errf(a.pos, "%s: give prompt or body", what)
		}
	case actNotify:
		if v := a.args["url"]; v != nil && v.kind == vLit {
			if err := checkNotifyURL(textOf(v.lit)); err != nil {
				c.l.errf(v.pos, "%s url: %v", what, err)
			}
		}
		if v := a.args["retries"]; v != nil && v.kind == vLit {
			if n, ok := ToJSON(v.lit).(int64); ok && (n < 0 || n > maxNotifyRetries) {
				c.l.errf(v.pos, "%s retries: must be 0 to %d", what, maxNotifyRetries)
			}
		}
	case actEnd:
		if has("error") && a.endStatus != StatusFailed {
			c.l.errf(c.l.pos(fs["error"]), "%s: error needs status: failed", what)
		}
	}
}

// checkNotifyURL accepts an absolute http or https URL.
func checkNotifyURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http or https URL", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q holds credentials; pass them in the body or a header, not the URL", u.Redacted())
	}
	return nil
}

// checkGlob checks a trigger pattern.
func checkGlob(p string) error {
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q is not a valid pattern: %v", p, err)
	}
	return nil
}

// matchGlob reports whether s matches the pattern; "" matches anything.
func matchGlob(p, s string) bool {
	if p == "" {
		return true
	}
	ok, _ := path.Match(p, s)
	return ok
}
