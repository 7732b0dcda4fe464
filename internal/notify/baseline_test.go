package notify

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/botd/botd/internal/model"
)

// stdDecode is what a Go programmer would write with encoding/json alone:
// the envelope with resourceData as json.RawMessage, then a second
// Unmarshal of resourceData into the typed struct the path or @odata.type
// calls for. It is the baseline of the benchmarks and the reference of the
// cross-check test. It enforces no limits and keeps no Raw; it shares
// ParseResourcePath and the enumeration normalisation with Decode so that
// the two produce comparable events.
func stdDecode(body []byte) ([]model.Event, error) {
	var doc struct {
		ODataType string `json:"@odata.type"`
		Value     []struct {
			ChangeType   string          `json:"changeType"`
			Resource     string          `json:"resource"`
			ResourceURL  string          `json:"resourceUrl"`
			CallbackURI  string          `json:"callbackUri"`
			ResourceData json.RawMessage `json:"resourceData"`
		} `json:"value"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, err
	}
	if doc.ODataType != "" && doc.ODataType != model.ODataCommsNotifications {
		return nil, fmt.Errorf("@odata.type %q", doc.ODataType)
	}
	events := make([]model.Event, 0, len(doc.Value))
	for i, v := range doc.Value {
		ev := model.Event{Index: i, Resource: v.Resource, ResourceURL: v.ResourceURL, CallbackURI: v.CallbackURI}
		ct, ok := enumFold(v.ChangeType, changeTypes)
		if !ok {
			return nil, fmt.Errorf("value[%d]: changeType %q", i, v.ChangeType)
		}
		ev.ChangeType = ct
		p := v.ResourceURL
		if p == "" {
			p = v.Resource
		}
		rp, err := ParseResourcePath(p)
		if err != nil {
			return nil, fmt.Errorf("value[%d]: %w", i, err)
		}
		ev.Path = rp
		data := v.ResourceData
		switch {
		case len(data) > 0 && data[0] == '[':
			// One struct for every element type a list can hold, so one
			// Unmarshal serves rosters, delta rosters and sessions.
			var elems []struct {
				model.Participant
				SequenceNumber int64               `json:"sequenceNumber"`
				Participants   []model.Participant `json:"participants"`
			}
			if err := json.Unmarshal(data, &elems); err != nil {
				return nil, fmt.Errorf("value[%d]: %w", i, err)
			}
			t := ""
			if len(elems) > 0 {
				t = elems[0].ODataType
			}
			ev.ODataType = t
			switch {
			case t == model.ODataDeltaParticipants:
				ev.Kind = model.EventRosterDelta
				ev.Delta = &model.DeltaRoster{SequenceNumber: elems[0].SequenceNumber, Participants: elems[0].Participants}
			case t == model.ODataContentSharingSession || t == "" && rp.Kind == model.ResourceContentSharing:
				ev.Kind = model.EventContentSharing
				ev.Sessions = make([]model.ContentSharingSession, len(elems))
				for j, e := range elems {
					ev.Sessions[j] = model.ContentSharingSession{ODataType: e.ODataType, ID: e.ID}
				}
			default:
				ev.Kind = model.EventRoster
				ev.Participants = make([]model.Participant, len(elems))
				for j, e := range elems {
					ev.Participants[j] = e.Participant
				}
			}
		case rp.Kind == model.ResourceCall:
			ev.Kind = model.EventCall
			ev.Call = new(model.Call)
			if err := json.Unmarshal(data, ev.Call); err != nil {
				return nil, fmt.Errorf("value[%d]: %w", i, err)
			}
			ev.ODataType = ev.Call.ODataType
			if st, ok := enumFold(string(ev.Call.State), model.CallStates); ok {
				ev.Call.State = st
			}
		case rp.Kind == model.ResourceOperation:
			ev.Kind = model.EventOperation
			ev.Operation = new(model.Operation)
			if err := json.Unmarshal(data, ev.Operation); err != nil {
				return nil, fmt.Errorf("value[%d]: %w", i, err)
			}
			ev.ODataType = ev.Operation.ODataType
			if st, ok := enumFold(strings.ToLower(string(ev.Operation.Status)), model.OperationStatuses); ok {
				ev.Operation.Status = st
			}
		default:
			return nil, fmt.Errorf("value[%d]: resourceData not understood", i)
		}
		events = append(events, ev)
	}
	return events, nil
}
