package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// maxParticipants bounds -participants: botd's decoder refuses larger
// rosters long before this, and a larger body tests nothing more.
const maxParticipants = 1000

// rosterOf returns payload, a roster notification (its first item's
// resourceData a list of participants), with that list made n long: the
// first participant as it is, then n-1 copies of it, each with its own
// participant id and identity ids. The item's members keep Graph's order
// (resourceUrl before resourceData), which is the order botd decodes in
// one pass; members other than the known ones are kept.
func rosterOf(payload []byte, n int) ([]byte, error) {
	if n < 1 || n > maxParticipants {
		return nil, fmt.Errorf("-participants: %d is not between 1 and %d", n, maxParticipants)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(payload, &doc); err != nil {
		return nil, fmt.Errorf("-participants: the payload is not a JSON object: %w", err)
	}
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(doc["value"], &items); err != nil || len(items) == 0 {
		return nil, errors.New("-participants: the payload has no notification in its value")
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(items[0]["resourceData"], &parts); err != nil || len(parts) == 0 {
		return nil, errors.New("-participants: the payload's first notification is not a roster (resourceData is not a list of participants)")
	}
	out := []json.RawMessage{parts[0]}
	for i := 1; i < n; i++ {
		p, err := participantCopy(parts[0], i)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	data, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	items[0]["resourceData"] = data
	list := make([]json.RawMessage, len(items))
	for i, it := range items {
		list[i] = ordered(it, []string{"@odata.type", "changeType", "resource", "resourceUrl"}, "resourceData")
	}
	if doc["value"], err = json.Marshal(list); err != nil {
		return nil, err
	}
	return ordered(doc, []string{"@odata.type"}, "value"), nil
}

// participantCopy is p with the i-th generated participant id, and each
// identity of its info.identity given the i-th generated id.
func participantCopy(p json.RawMessage, i int) (json.RawMessage, error) {
	d := json.NewDecoder(bytes.NewReader(p))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("-participants: the first participant is not an object: %w", err)
	}
	m["id"] = fmt.Sprintf("9a9d1a0d-0000-4000-8000-%012x", i)
	if info, ok := m["info"].(map[string]any); ok {
		if ids, ok := info["identity"].(map[string]any); ok {
			for _, v := range ids {
				if id, ok := v.(map[string]any); ok {
					id["id"] = fmt.Sprintf("1d0d1a0d-0000-4000-8000-%012x", i)
				}
			}
		}
	}
	return json.Marshal(m)
}

// ordered writes m as an object: the members of first in that order, the
// rest sorted, then last.
func ordered(m map[string]json.RawMessage, first []string, last string) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	put := func(k string) {
		v, ok := m[k]
		if !ok {
			return
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(k)
		b.Write(name)
		b.WriteByte(':')
		b.Write(v)
	}
	for _, k := range first {
		put(k)
	}
	var rest []string
	for k := range m {
		if !slices.Contains(first, k) && k != last {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		put(k)
	}
	put(last)
	b.WriteByte('}')
	return b.Bytes()
}
