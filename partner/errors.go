package partner

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

var (
	// ErrNotFound matches an *APIError with status 404, and the errors of lookups that found
	// nothing (Client.TicketByNumber).
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized matches an *APIError with status 401: the credentials were rejected, or a
	// fresh access token was refused.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden matches an *APIError with status 403.
	ErrForbidden = errors.New("forbidden")
	// ErrRateLimited matches an *APIError with status 429.
	ErrRateLimited = errors.New("rate limited")
	// ErrTicketWriteDisabled is returned by Client.UpdateTicket unless Config.AllowTicketWrite is
	// set; no request is made.
	ErrTicketWriteDisabled = errors.New("ticket write disabled (Config.AllowTicketWrite is false)")
	// ErrInvalidConfig is wrapped by the errors of Config.Validate.
	ErrInvalidConfig = errors.New("invalid partner config")
	// ErrInvalidArgument is wrapped by errors about arguments rejected before any request is
	// made, such as an empty id or a page size out of range.
	ErrInvalidArgument = errors.New("invalid argument")
)

// Problem is an RFC 7807 problem document, the body of Jifeline's error answers.
type Problem struct {
	Type     string `json:"type,omitempty"`
	Title    string `json:"title,omitempty"`
	Status   int    `json:"status,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// APIError is an answer of the Partner API other than 2xx. It never holds the client secret or
// an access token, even if the server echoed them.
type APIError struct {
	StatusCode int
	// Method and Path identify the request; Path has no query.
	Method string
	Path   string
	// Problem is the decoded problem document, when the body was one.
	Problem *Problem
	// Body is the start of the raw body, when it was not a problem document.
	Body string
	// RetryAfter is the wait the server asked for with Retry-After, or 0.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("partner api: ")
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.Path)
	b.WriteString(": ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if text := http.StatusText(e.StatusCode); text != "" {
		b.WriteByte(' ')
		b.WriteString(text)
	}
	switch p := e.Problem; {
	case p != nil:
		if p.Title != "" && p.Title != http.StatusText(e.StatusCode) {
			b.WriteString(": ")
			b.WriteString(p.Title)
		}
		if p.Detail != "" {
			b.WriteString(": ")
			b.WriteString(p.Detail)
		}
	case e.Body != "":
		b.WriteString(": ")
		b.WriteString(e.Body)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotFound) and the other status sentinels work.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	}
	return false
}

// Temporary reports whether the same request may succeed later: 408, 429 and 5xx other than
// 501. The client has already retried these within its budget when it returns one.
func (e *APIError) Temporary() bool {
	return retryableStatus(e.StatusCode)
}

func retryableStatus(code int) bool {
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		return true
	case code >= 500 && code != http.StatusNotImplemented:
		return code <= 599
	}
	return false
}

// maxErrorBody bounds how much of a body that is not a problem document an APIError keeps.
const maxErrorBody = 512

// newAPIError builds the error for a non-2xx answer; every string in secrets is removed from what
// the server sent.
func newAPIError(method, path string, resp *http.Response, body []byte, now time.Time, secrets ...string) *APIError {
	e := &APIError{
		StatusCode: resp.StatusCode,
		Method:     method,
		Path:       path,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now),
	}
	var p Problem
	if json.Unmarshal(body, &p) == nil && (p.Type != "" || p.Title != "" || p.Detail != "") {
		p.Type = clean(p.Type, secrets)
		p.Title = clean(p.Title, secrets)
		p.Detail = clean(p.Detail, secrets)
		p.Instance = clean(p.Instance, secrets)
		e.Problem = &p
		return e
	}
	e.Body = clean(string(body), secrets)
	return e
}

// clean removes secrets from s, makes it valid single-line UTF-8 and bounds its length.
func clean(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxErrorBody {
		cut := maxErrorBody
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date. It returns 0 when
// the header is absent, malformed or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Cap absurd values instead of overflowing; the retry budget rejects them anyway.
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
