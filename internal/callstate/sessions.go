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

func (c *call) sessionIndexLocked(id string) int {
	for i := range c.sessions {
		if c.sessions[i].ID == id {
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
	for i := range ev.Sessions {
		ss := ev.Sessions[i]
		if ss.ID == "" {
			s.ignoreLocked(c, a, reasonMalformed)
			continue
		}
		j := c.sessionIndexLocked(ss.ID)
		switch {
		case ev.ChangeType == model.ChangeDeleted && j < 0:
			s.ignoreLocked(c, a, reasonUnknownSession)
		case ev.ChangeType == model.ChangeDeleted:
			c.sessions = slices.Delete(c.sessions, j, j+1)
			c.endedSessions = rememberID(c.endedSessions, ss.ID, maxEndedSessions)
			a.add(Change{Kind: ContentSharingEnded, Session: &ss})
		case j >= 0 && ev.ChangeType == model.ChangeCreated:
			s.ignoreLocked(c, a, reasonDuplicateSession)
		case j >= 0:
			c.sessions[j] = ss
			a.add(Change{Kind: ContentSharingUpdated, Session: &ss})
		case slices.Contains(c.endedSessions, ss.ID):
			s.ignoreLocked(c, a, reasonSessionEnded)
		case len(c.sessions) >= maxSessionsPerCall:
			s.ignoreLocked(c, a, reasonTooManySessions)
		default:
			// Created, or an update for a session whose creation was
			// missed: either way it starts now for botd.
			c.sessions = append(c.sessions, ss)
			a.add(Change{Kind: ContentSharingStarted, Session: &ss})
		}
	}
}
