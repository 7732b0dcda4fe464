package graph

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// fetchingSource fetches a new token of one tenant on every call, counting
// fetches and failures and turning failures into *TokenError. It sits
// under an oauth2.ReuseTokenSource, which calls it only when the cached
// token has expired (or is within oauth2's early-expiry margin), so Graph
// requests do not each cost a token request. The client-credentials
// config is built per fetch, so that a certificate assertion is fresh and
// a federated token file is read again each time.
type fetchingSource struct {
	clientID string
	tokenURL string
	scope    string
	cred     *credential
	ctx      context.Context // carries the token HTTP client (oauth2.HTTPClient)
	m        *metrics
	log      zerolog.Logger
}

func (s *fetchingSource) Token() (*oauth2.Token, error) {
	s.m.tokenFetches.Inc()
	cc := &clientcredentials.Config{
		ClientID: s.clientID,
		TokenURL: s.tokenURL,
		Scopes:   []string{s.scope},
		// Entra ID takes the credential in the form body. Naming the
		// style also avoids auto-detection, which on failure asks twice.
		AuthStyle: oauth2.AuthStyleInParams,
	}
	if err := s.cred.apply(cc); err != nil {
		s.m.tokenErrors.Inc()
		s.log.Debug().Err(err).Msg("token fetch failed: credential")
		return nil, &TokenError{Err: err}
	}
	tok, err := cc.Token(s.ctx)
	if err != nil {
		s.m.tokenErrors.Inc()
		te := &TokenError{Err: err}
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			te.Code, te.Description = re.ErrorCode, re.ErrorDescription
			if re.Response != nil {
				te.StatusCode = re.Response.StatusCode
			}
			// RetrieveError's text carries the raw response body; keep
			// only what TokenError chooses to print.
			te.Err = errors.New("token endpoint refused the request")
		}
		s.log.Debug().Int("status", te.StatusCode).Str("code", te.Code).Msg("token fetch failed")
		return nil, te
	}
	s.log.Debug().Time("expiry", tok.Expiry).Msg("token fetched")
	return tok, nil
}

// CheckToken reports whether an access token of the default tenant can be
// had, for readiness. It uses that tenant's cached token source, so it
// costs a token request only when the cached token has expired. It returns
// when ctx ends even if the token endpoint is slow (the fetch itself is
// bounded by RequestTimeout).
func (c *Client) CheckToken(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		_, err := c.tokens.Token()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("check token: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("check token: %w", ctx.Err())
	}
}
