package partner

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// defaultTokenLifetime is assumed when the token answer has no expires_in (Jifeline: one hour).
const defaultTokenLifetime = time.Hour

// tokenCache holds the access token and the refresh in flight, if any.
type tokenCache struct {
	mu        sync.Mutex
	token     string
	refreshAt time.Time // half the lifetime: Jifeline advises refreshing every 30 of 60 minutes
	expiresAt time.Time // a little before the real expiry
	flight    *tokenFlight
}

// tokenFlight is one token request; done is closed when it ends.
type tokenFlight struct {
	done  chan struct{}
	token string
	err   error
	// abandoned is set when the request ended because its caller's context did; the callers
	// waiting for it then try again with their own contexts.
	abandoned bool
}

// invalidate forgets token if it is still the cached one, so that many calls refused with the
// same token cause a single refresh.
func (tc *tokenCache) invalidate(token string) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.token == token {
		tc.token = ""
	}
}

// accessToken returns a valid access token. One caller at a time requests a new one, using its own
// context; the others wait for it (each until its own context ends), or keep using the current
// token while it is still valid.
func (c *Client) accessToken(ctx context.Context) (string, error) {
	tc := &c.tokens
	for {
		tc.mu.Lock()
		now := c.now()
		if tc.token != "" && now.Before(tc.refreshAt) {
			token := tc.token
			tc.mu.Unlock()
			return token, nil
		}
		f := tc.flight
		if f == nil {
			f = &tokenFlight{done: make(chan struct{})}
			tc.flight = f
			tc.mu.Unlock()
			c.refreshToken(ctx, f)
			return f.token, f.err
		}
		if tc.token != "" && now.Before(tc.expiresAt) {
			token := tc.token
			tc.mu.Unlock()
			return token, nil
		}
		tc.mu.Unlock()

		select {
		case <-f.done:
			if !f.abandoned {
				return f.token, f.err
			}
		case <-ctx.Done():
			return "", fmt.Errorf("partner: wait for access token: %w", context.Cause(ctx))
		}
	}
}

// refreshToken performs flight f and publishes its outcome.
func (c *Client) refreshToken(ctx context.Context, f *tokenFlight) {
	requested := c.now()
	token, lifetime, err := c.fetchToken(ctx)

	tc := &c.tokens
	tc.mu.Lock()
	if err == nil {
		tc.token = token
		tc.refreshAt = requested.Add(lifetime / 2)
		tc.expiresAt = requested.Add(lifetime - lifetime/10)
	}
	f.token, f.err, f.abandoned = token, err, err != nil && ctx.Err() != nil
	tc.flight = nil
	tc.mu.Unlock()
	close(f.done)

	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "partner api access token request failed", slog.Any("error", err))
		return
	}
	c.log.LogAttrs(ctx, slog.LevelInfo, "partner api access token obtained", slog.Duration("lifetime", lifetime))
}

// tokenAnswer is the OAuth2 token answer.
type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	TokenType   string `json:"token_type"`
}

// fetchToken requests a new access token with the client credentials.
func (c *Client) fetchToken(ctx context.Context) (string, time.Duration, error) {
	ctx, span := c.tracer.Start(ctx, "partner.FetchToken")
	defer span.End()
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {c.cfg.ClientID},
		"client_secret": {c.cfg.ClientSecret},
	}
	ans, err := c.roundTrip(ctx, http.MethodPost, PathToken, c.cfg.TokenURL, []byte(form.Encode()),
		"application/x-www-form-urlencoded", "")
	if err != nil {
		return "", 0, fmt.Errorf("partner: fetch access token: %w", err)
	}
	defer ans.release()
	var ta tokenAnswer
	if err := decode("token answer", ans.body.Bytes(), &ta); err != nil {
		return "", 0, fmt.Errorf("partner: fetch access token: %w", err)
	}
	switch {
	case ta.AccessToken == "":
		return "", 0, fmt.Errorf("partner: fetch access token: %w",
			&DecodeError{What: "token answer", Field: "access_token", Err: errMissing})
	case ta.TokenType != "" && !strings.EqualFold(ta.TokenType, "bearer"):
		return "", 0, fmt.Errorf("partner: fetch access token: %w",
			&DecodeError{What: "token answer", Field: "token_type", Err: fmt.Errorf("want Bearer, got %q", ta.TokenType)})
	}
	lifetime := defaultTokenLifetime
	if ta.ExpiresIn > 0 {
		lifetime = time.Duration(min(ta.ExpiresIn, int64(24*time.Hour/time.Second))) * time.Second
	}
	return ta.AccessToken, lifetime, nil
}
