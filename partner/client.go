package partner

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// maxBody bounds the size of an answer; a page of 1000 tickets is well under 2 MiB.
const maxBody = 32 << 20

// Client calls the Jifeline Partner API. It is safe for concurrent use.
//
// Every call authenticates with a cached OAuth2 client-credentials token, refreshed at half its
// lifetime with one token request however many calls wait for it; a 401 answer triggers one
// re-authentication and one retry. Answers 408, 429 and 5xx (other than 501), timeouts and
// transport errors are retried with jittered exponential backoff, honouring Retry-After, within
// the budget of Config.MaxRetries and Config.MaxRetryElapsed. All requests are idempotent, so
// retrying them is safe.
type Client struct {
	cfg       Config
	baseURL   string
	http      *http.Client
	transport http.RoundTripper // under the OpenTelemetry wrapper
	log       *slog.Logger
	tracer    trace.Tracer
	tokens    tokenCache

	// now and sleep are the clock; tests replace them so that no test waits for real.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// NewClient returns a Client for cfg, or the errors of cfg.Validate.
func NewClient(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		*hc = *cfg.HTTPClient
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	hc.Transport = otelhttp.NewTransport(base, otelhttp.WithTracerProvider(tp))
	return &Client{
		cfg:       cfg,
		baseURL:   trimSlash(cfg.BaseURL),
		http:      hc,
		transport: base,
		log:       cfg.Logger,
		tracer:    tp.Tracer("github.com/obdorch/obdorch/partner"),
		now:       time.Now,
		sleep:     sleep,
	}, nil
}

// CloseIdleConnections closes the idle connections of the client's transport. Call it when done
// with a Client whose Config had no HTTPClient; the client remains usable.
func (c *Client) CloseIdleConnections() {
	if t, ok := c.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// request is one Partner API operation.
type request struct {
	op     string // operation name for spans and logs, e.g. "GetTicket"
	method string
	path   string // escaped path below BaseURL
	query  url.Values
	body   []byte // JSON, or nil
}

// do performs r with authentication and retries and hands the body of the 2xx answer to decode;
// decode must not keep the slice.
func (c *Client) do(ctx context.Context, r request, decode func(status int, body []byte) error) (err error) {
	ctx, span := c.tracer.Start(ctx, "partner."+r.op, trace.WithAttributes(
		attribute.String("http.request.method", r.method),
		attribute.String("url.path", r.path),
	))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()

	u := c.baseURL + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var ctype string
	if r.body != nil {
		ctype = "application/json"
	}
	token, err := c.accessToken(ctx)
	if err != nil {
		return err
	}
	ans, err := c.roundTrip(ctx, r.method, r.path, u, r.body, ctype, token)
	if apiErr, ok := errors.AsType[*APIError](err); ok && apiErr.StatusCode == http.StatusUnauthorized {
		c.log.LogAttrs(ctx, slog.LevelInfo, "partner api refused the access token; re-authenticating",
			slog.String("method", r.method), slog.String("path", r.path))
		c.tokens.invalidate(token)
		if token, err = c.accessToken(ctx); err != nil {
			return err
		}
		ans, err = c.roundTrip(ctx, r.method, r.path, u, r.body, ctype, token)
	}
	if err != nil {
		return err
	}
	defer ans.release()
	return decode(ans.status, ans.body.Bytes())
}

// answer is a 2xx answer; release returns its buffer to the pool.
type answer struct {
	status int
	body   *bytes.Buffer
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (a answer) release() {
	if a.body.Cap() <= maxBody/4 {
		a.body.Reset()
		bufPool.Put(a.body)
	}
}

// roundTrip sends one request, retrying within the budget, and returns the 2xx answer or the last
// error. path is for errors and logs; rawURL is what is sent; token is empty for the token
// request itself.
func (c *Client) roundTrip(ctx context.Context, method, path, rawURL string, body []byte, ctype, token string) (answer, error) {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(c.cfg.RetryInitialInterval),
		backoff.WithMaxInterval(c.cfg.RetryMaxInterval),
		backoff.WithMaxElapsedTime(0), // the budget is checked below, Retry-After included
	)
	start := c.now()
	for attempt := 1; ; attempt++ {
		ans, retry, err := c.attempt(ctx, method, path, rawURL, body, ctype, token)
		if err == nil || !retry {
			return ans, err
		}
		wait := b.NextBackOff()
		if apiErr, ok := errors.AsType[*APIError](err); ok {
			wait = max(wait, apiErr.RetryAfter)
		}
		elapsed := c.now().Sub(start)
		if attempt > c.cfg.MaxRetries || elapsed+wait > c.cfg.MaxRetryElapsed {
			c.log.LogAttrs(ctx, slog.LevelWarn, "partner api request failed; retry budget spent",
				slog.String("method", method), slog.String("path", path), slog.Int("attempts", attempt),
				slog.Duration("elapsed", elapsed), slog.Duration("next_wait", wait), slog.Any("error", err))
			return answer{}, fmt.Errorf("giving up after %d attempts in %v: %w", attempt, elapsed.Round(time.Millisecond), err)
		}
		c.log.LogAttrs(ctx, slog.LevelWarn, "partner api request failed; retrying",
			slog.String("method", method), slog.String("path", path), slog.Int("attempt", attempt),
			slog.Duration("wait", wait), slog.Any("error", err))
		trace.SpanFromContext(ctx).AddEvent("retry", trace.WithAttributes(
			attribute.Int("attempt", attempt), attribute.String("wait", wait.String())))
		if serr := c.sleep(ctx, wait); serr != nil {
			return answer{}, fmt.Errorf("%w (while waiting to retry after: %w)", serr, err)
		}
	}
}

// attempt sends the request once. retry reports whether a failure is worth another attempt.
func (c *Client) attempt(ctx context.Context, method, path, rawURL string, body []byte, ctype, token string) (ans answer, retry bool, err error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, rawURL, rd)
	if err != nil {
		return answer{}, false, fmt.Errorf("partner api: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}

	started := c.now()
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return answer{}, false, fmt.Errorf("partner api: %s %s: %w", method, path, context.Cause(ctx))
		}
		// The attempt timed out or the connection failed; only a bad certificate is final.
		return answer{}, !badCertificate(err), fmt.Errorf("partner api: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	buf := bufPool.Get().(*bytes.Buffer)
	ans = answer{status: resp.StatusCode, body: buf}
	if resp.ContentLength > 0 && resp.ContentLength <= maxBody {
		buf.Grow(int(resp.ContentLength) + bytes.MinRead) // ReadFrom wants MinRead spare to see EOF
	}
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, maxBody+1))
	c.log.LogAttrs(ctx, slog.LevelDebug, "partner api request",
		slog.String("method", method), slog.String("path", path), slog.Int("status", resp.StatusCode),
		slog.Int("bytes", buf.Len()), slog.Duration("duration", c.now().Sub(started)))
	switch {
	case err != nil:
		ans.release()
		if ctx.Err() != nil {
			return answer{}, false, fmt.Errorf("partner api: %s %s: read answer: %w", method, path, context.Cause(ctx))
		}
		return answer{}, true, fmt.Errorf("partner api: %s %s: read answer: %w", method, path, err)
	case buf.Len() > maxBody:
		ans.release()
		return answer{}, false, fmt.Errorf("partner api: %s %s: answer exceeds %d bytes", method, path, maxBody)
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return ans, false, nil
	}
	apiErr := newAPIError(method, path, resp, buf.Bytes(), c.now(), c.cfg.ClientSecret, url.QueryEscape(c.cfg.ClientSecret), token)
	ans.release()
	return answer{}, retryableStatus(resp.StatusCode), apiErr
}

func badCertificate(err error) bool {
	_, unknownCA := errors.AsType[x509.UnknownAuthorityError](err)
	_, wrongHost := errors.AsType[x509.HostnameError](err)
	_, invalid := errors.AsType[x509.CertificateInvalidError](err)
	return unknownCA || wrongHost || invalid
}
