package callstate

import (
	"sort"

	"github.com/botd/botd/internal/model"
)

// tones is one call's key presses: the newest MaxTonesPerCall, sorted by
// sequenceId. Graph numbers a call's presses; a sequenceId seen before is a
// duplicate, and one older than every press kept (after some were dropped)
// is stale, since it can no longer be told from a duplicate.
type tones struct {
	list    []ToneView
	dropped bool // the list has dropped its oldest presses
}

// toneLocked records a key press and reports it, once per sequenceId.
func (s *Store) toneLocked(c *call, a *applyCtx, ti *model.ToneInfo) {
	key := ti.Tone.Key()
	if key == "" {
		s.ignoreLocked(c, a, reasonMalformed)
		return
	}
	t := &c.rareLocked().tones
	i := sort.Search(len(t.list), func(i int) bool { return t.list[i].SequenceID >= ti.SequenceID })
	switch {
	case i < len(t.list) && t.list[i].SequenceID == ti.SequenceID:
		s.ignoreLocked(c, a, reasonDuplicateTone)
		return
	case i == 0 && t.dropped:
		s.ignoreLocked(c, a, reasonStaleTone)
		return
	}
	v := ToneView{Tone: ti.Tone, Key: key, SequenceID: ti.SequenceID, At: a.now}
	t.list = append(t.list, ToneView{})
	copy(t.list[i+1:], t.list[i:])
	t.list[i] = v
	if len(t.list) > s.cfg.MaxTonesPerCall {
		copy(t.list, t.list[1:])
		t.list = t.list[:len(t.list)-1]
		t.dropped = true
	}
	a.add(Change{Kind: ToneReceived, Tone: &v})
	c.log().Info().Str("tone", string(ti.Tone)).Int64("sequence_id", ti.SequenceID).
		Str("cause", a.cause()).Msg("tone received")
}
