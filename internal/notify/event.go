package notify

import (
	"bytes"
	"errors"

	"github.com/botd/botd/internal/model"
)

// interpret is the second pass over an item that read cleanly: it resolves
// the resource path, decides what resourceData is, decodes it and appends
// the Event, or notes on the item why it cannot.
func (st *state) interpret(it *item, b *Batch) {
	ev := model.Event{
		Index:       it.index,
		ChangeType:  it.changeType,
		Resource:    it.resource,
		ResourceURL: it.resourceURL,
		CallbackURI: it.callbackURI,
		Quirks:      it.quirks,
	}
	havePath, ok := itemPath(it, &ev)
	if !ok {
		return
	}

	if it.decoded {
		if it.dataReason != "" {
			it.fail("%s", it.dataReason)
			return
		}
		p := &it.pre
		ev.Kind, ev.ODataType = p.Kind, p.ODataType
		ev.Call, ev.Operation, ev.Participants, ev.Delta, ev.Sessions = p.Call, p.Operation, p.Participants, p.Delta, p.Sessions
	} else if !st.secondPass(it, &ev, havePath) {
		return
	}
	st.finish(it, b, &ev, havePath)
}

// secondPass classifies and decodes resourceData the first pass validated
// but did not decode; false when the item failed.
func (st *state) secondPass(it *item, ev *model.Event, havePath bool) bool {
	kind, odt, err := st.classify(it.data, ev.Path, havePath)
	if err != nil {
		it.fail("%s", st.res.reason(err))
		return false
	}
	ev.Kind, ev.ODataType = kind, odt
	if kind != model.EventUnknown {
		if err := st.decodeData(ev, it.data); err != nil {
			it.fail("%s", st.res.reason(err))
			return false
		}
		ev.Quirks |= st.res.quirks
	}
	return true
}

// finish checks the decoded event against its path and adds it to b.
func (st *state) finish(it *item, b *Batch, ev *model.Event, havePath bool) {
	if ev.Call != nil && ev.Call.ID != "" {
		switch {
		case havePath && ev.Call.ID != ev.Path.CallID:
			// The path is what Graph routes by and what the resource
			// and resourceUrl agree on; a disagreeing id in the body
			// does not move the event to another call.
			ev.Call.ID = ev.Path.CallID
			ev.Quirks |= model.QuirkIDMismatch
		case !havePath && !validID(ev.Call.ID):
			it.fail("resourceData: call id %s is not a valid id", quoteTrunc([]byte(ev.Call.ID)))
			return
		case !havePath:
			ev.Path = model.ResourcePath{CallID: ev.Call.ID, Kind: model.ResourceCall}
			havePath = true
		}
	}
	if !havePath {
		it.fail("no resource or resourceUrl, and no call id in resourceData")
		return
	}
	if ev.Kind == model.EventUnknown {
		ev.Raw = bytes.Clone(it.raw)
	}
	if b.Events == nil {
		b.Events = make([]model.Event, 0, 1)
	}
	b.Events = append(b.Events, *ev)
}

// itemPath sets ev.Path from the item's resourceUrl and resource: the
// current form wins, and the legacy one must agree with it, so that the
// two can never name different calls. ok is false when the item failed.
func itemPath(it *item, ev *model.Event) (havePath, ok bool) {
	if it.resourceURL != "" {
		p, noSlash, err := parsePath(it.resourceURL, true)
		if err != nil {
			it.fail("resourceUrl: %v", err)
			return false, false
		}
		ev.Path, havePath = p, true
		if noSlash {
			ev.Quirks |= model.QuirkPathWithoutSlash
		}
	}
	if it.resource != "" {
		p, noSlash, err := parsePath(it.resource, true)
		if err != nil {
			it.fail("resource: %v", err)
			return false, false
		}
		if noSlash {
			ev.Quirks |= model.QuirkPathWithoutSlash
		}
		switch {
		case !havePath:
			ev.Path, havePath = p, true
		case p != ev.Path:
			it.fail("resource and resourceUrl address different resources")
			return false, false
		}
	}
	return havePath, true
}

// classify decides which event an item is. A resource path of a shape botd
// does not know makes it unknown. Otherwise the @odata.type of resourceData
// (of its first element, for an array) decides when it names a resource
// botd knows; when it is absent the path decides; when it names something
// else the event is unknown. resourceData of a JSON type the resource
// cannot have is an error.
func (st *state) classify(data []byte, p model.ResourcePath, havePath bool) (model.EventKind, string, error) {
	kind, odt, err := st.classifyValue(data, p.Kind, havePath)
	if err == nil && kind == model.EventRoster && p.Kind == model.ResourceParticipants && p.SubID != "" {
		// A list at one participant's path is not the full roster that
		// EventRoster promises; applying it as one would drop everyone
		// else, so botd does not guess.
		kind = model.EventUnknown
	}
	return kind, odt, err
}

// classifyValue is classify by the value and the path's kind alone.
func (st *state) classifyValue(data []byte, pk model.ResourceKind, havePath bool) (model.EventKind, string, error) {
	if data == nil {
		return model.EventUnknown, "", nil
	}
	r := &st.res
	r.reset(data, trusted...)
	var odt string
	var err error
	switch data[0] {
	case '{':
		odt, err = r.peekType()
	case '[':
		if _, err = r.dec.ReadToken(); err == nil && r.dec.PeekKind() == '{' {
			odt, err = r.peekType()
		}
	}
	if err != nil {
		return 0, "", err
	}
	if havePath && pk == model.ResourceOther {
		return model.EventUnknown, odt, nil
	}
	var pathKind model.EventKind // what the path alone says
	if havePath {
		pathKind = pathEvents[pk]
	}
	switch data[0] {
	case '{':
		switch {
		case odt == model.ODataCall:
			return model.EventCall, odt, nil
		case isOperationType(odt):
			return model.EventOperation, odt, nil
		case odt == model.ODataParticipant || odt == model.ODataDeltaParticipants || odt == model.ODataContentSharingSession:
			return 0, "", semErrorf("a single %s object, want an array", odt)
		case odt != "":
			return model.EventUnknown, odt, nil
		case pathKind == model.EventCall || pathKind == model.EventOperation:
			return pathKind, odt, nil
		case pathKind == model.EventRoster || pathKind == model.EventContentSharing:
			return 0, "", semErrorf("got an object, want an array at a %s path", pk)
		}
	case '[':
		switch {
		case odt == model.ODataParticipant:
			return model.EventRoster, odt, nil
		case odt == model.ODataDeltaParticipants:
			return model.EventRosterDelta, odt, nil
		case odt == model.ODataContentSharingSession:
			return model.EventContentSharing, odt, nil
		case odt == model.ODataCall || isOperationType(odt):
			return 0, "", semErrorf("an array of %s, want a single object", odt)
		case odt != "":
			return model.EventUnknown, odt, nil
		case pathKind == model.EventRoster || pathKind == model.EventContentSharing:
			return pathKind, odt, nil
		case pathKind == model.EventCall || pathKind == model.EventOperation:
			return 0, "", semErrorf("got an array, want an object at a %s path", pk)
		}
	default:
		if pathKind != model.EventUnknown {
			return 0, "", semErrorf("got %s, want an object or an array", describe(r.dec.PeekKind()))
		}
	}
	return model.EventUnknown, odt, nil
}

var pathEvents = [...]model.EventKind{
	model.ResourceOther:          model.EventUnknown,
	model.ResourceCall:           model.EventCall,
	model.ResourceParticipants:   model.EventRoster,
	model.ResourceOperation:      model.EventOperation,
	model.ResourceContentSharing: model.EventContentSharing,
}

// peekType reads the @odata.type member of the object at hand, wherever it
// stands among the members, and stops there. "" if there is none.
func (r *rd) peekType() (string, error) {
	if _, err := r.dec.ReadToken(); err != nil {
		return "", err
	}
	for r.more() {
		name, err := r.name()
		if err != nil {
			return "", err
		}
		if string(name) == "@odata.type" {
			// The type decides what the item is: unlike other strings,
			// a number is not taken for one.
			if k := r.dec.PeekKind(); k == '0' {
				return "", typeError(k, "string")
			}
			return r.sym()
		}
		if err := r.skip(); err != nil {
			return "", err
		}
	}
	return "", nil
}

// decodeData decodes resourceData as the kind classify chose.
func (st *state) decodeData(ev *model.Event, data []byte) error {
	r := &st.res
	r.reset(data, trusted...)
	return decodeKind(r, ev)
}

// decodeKind decodes the resourceData r is at as ev.Kind.
func decodeKind(r *rd, ev *model.Event) error {
	var err error
	switch ev.Kind {
	case model.EventCall:
		ev.Call, err = r.call()
	case model.EventOperation:
		ev.Operation, err = r.operation()
	case model.EventRoster:
		ev.Participants, err = r.roster(model.ODataParticipant)
	case model.EventRosterDelta:
		ev.Delta, err = r.deltaRoster()
	case model.EventContentSharing:
		ev.Sessions, err = r.sessions()
	}
	return err
}

// reason words an error from the resourceData reader as an item's reason,
// located by the JSON Pointer of where the reader stopped.
func (r *rd) reason(err error) string {
	var se *semErr
	msg := err.Error()
	if errors.As(err, &se) {
		msg = se.msg
		if se.unread {
			// Step onto the offending value so the pointer names it (an
			// array element has no name to read first).
			_ = r.dec.SkipValue()
		}
	}
	return dataReason(string(r.dec.StackPointer()), msg)
}

// dataReason is an item's reason for a problem in its resourceData, at the
// JSON Pointer p below it ("" for resourceData itself).
func dataReason(p, msg string) string {
	if p != "" {
		return "resourceData" + truncPointer(p) + ": " + msg
	}
	return "resourceData: " + msg
}
