package calls

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/model"
	"github.com/botd/botd/internal/netx"
	"github.com/botd/botd/internal/problem"
)

// GraphCall is Graph's own view of a call botd tracks (terminated ones
// included): what Graph says now, to compare with what botd holds.
func (s *Service) GraphCall(ctx context.Context, callID string) (*model.Call, error) {
	if _, ok := s.store.Call(callID); !ok {
		return nil, &Error{Kind: NotFound, Message: fmt.Sprintf("call %q is not tracked", callID)}
	}
	c, _, err := s.graph.GetCall(s.tenantCtx(ctx, callID), callID)
	return c, err
}

// GraphOperation is Graph's own view of one of a tracked call's
// operations.
func (s *Service) GraphOperation(ctx context.Context, callID, opID string) (*model.Operation, error) {
	if _, err := s.operation(callID, opID); err != nil {
		return nil, err
	}
	op, _, err := s.graph.GetOperation(s.tenantCtx(ctx, callID), callID, opID)
	return op, err
}

// Recording is the audio a completed recordResponse recorded: botd fetches
// it from the operation's recordingLocation with its recordingAccessToken,
// which never leaves botd. The caller closes the body.
func (s *Service) Recording(ctx context.Context, callID, opID string) (io.ReadCloser, string, error) {
	op, err := s.operation(callID, opID)
	if err != nil {
		return nil, "", err
	}
	if op.RecordingLocation == "" || op.RecordingAccessToken == "" {
		return nil, "", &Error{Kind: NotFound, Message: fmt.Sprintf("operation %q has no recording", problem.Shorten(opID))}
	}
	if s.cfg.Fetch == nil {
		return nil, "", &problem.Error{Code: problem.Unavailable, Message: "recording downloads are not configured"}
	}
	u, err := url.Parse(op.RecordingLocation)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && netx.IsLoopbackHost(u.Hostname()))) {
		return nil, "", &problem.Error{Code: problem.Upstream, Message: "the recording's location is not an https URL"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Authorization", "Bearer "+op.RecordingAccessToken.Reveal())
	res, err := s.cfg.Fetch.Do(req)
	if err != nil {
		return nil, "", &problem.Error{Code: problem.Upstream, Message: "fetch the recording", Err: err}
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		return nil, "", &problem.Error{Code: problem.Upstream, Message: fmt.Sprintf("the recording's location answered %d", res.StatusCode)}
	}
	s.log.Info().Str("call_id", callID).Str("op_id", opID).Msg("recording fetched")
	return res.Body, res.Header.Get("Content-Type"), nil
}

// operation is a tracked call's operation, or a NotFound error.
func (s *Service) operation(callID, opID string) (*callstate.OperationView, error) {
	v, ok := s.store.Call(callID)
	if !ok {
		return nil, &Error{Kind: NotFound, Message: fmt.Sprintf("call %q is not tracked", callID)}
	}
	for i := range v.Operations {
		if v.Operations[i].ID == opID {
			return &v.Operations[i], nil
		}
	}
	return nil, &Error{Kind: NotFound, Message: fmt.Sprintf("operation %q is not one of call %q's", problem.Shorten(opID), callID)}
}
