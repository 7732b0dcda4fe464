package callstate

import (
	"slices"

	"github.com/botd/botd/internal/model"
)

// Bounds on a call's content-sharing sessions: those live, and the ids of
// those ended that are remembered so a late update does not revive them.
const (
	maxSessionsPerCall = 64
	maxEndedSessions   = 16
)

func (r *callRare) sessionIndex(id string) int {
	for i := range r.sessions {
		if r.sessions[i].ID == id {
			return i
		}
	}
	return -1
}

func (s *Store) applySessionsLocked(c *call, a *applyCtx, ev *model.Event) {
	if c.res.State == model.StateTerminated {
		s.ignoreLocked(c, a, reasonAfterTerminated)
		return
	}
	r := c.rareLocked()
	for i := range ev.Sessions {
		ss := ev.Sessions[i]
		if ss.ID == "" {
			s.ignoreLocked(c, a, reasonMalformed)
			continue
		}
		j := r.sessionIndex(ss.ID)
		switch {
		case ev.ChangeType == model.ChangeDeleted && j < 0:
			s.ignoreLocked(c, a, reasonUnknownSession)
		case ev.ChangeType == model.ChangeDeleted:
			r.sessions = slices.Delete(r.sessions, j, j+1)
			r.endedSessions = rememberID(r.endedSessions, ss.ID, maxEndedSessions)
			a.add(Change{Kind: ContentSharingEnded, Session: &ss})
		case j >= 0 && ev.ChangeType == model.ChangeCreated:
			s.ignoreLocked(c, a, reasonDuplicateSession)
		case j >= 0:
			r.sessions[j] = ss
			a.add(Change{Kind: ContentSharingUpdated, Session: &ss})
		case slices.Contains(r.endedSessions, ss.ID):
			s.ignoreLocked(c, a, reasonSessionEnded)
		case len(r.sessions) >= maxSessionsPerCall:
			s.ignoreLocked(c, a, reasonTooManySessions)
		default:
			// Created, or an update for a session whose creation was
			// missed: either way it starts now for botd.
			r.sessions = append(r.sessions, ss)
			a.add(Change{Kind: ContentSharingStarted, Session: &ss})
		}
	}
}
