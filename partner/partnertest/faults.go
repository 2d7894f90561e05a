package partnertest

import (
	"cmp"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Faults are the failures a fake injects, in this order: Hang, Latency, then RateLimited or
// ServerErrors. They apply to every request whose path starts with PathPrefix except steering
// requests under /_fake/. The zero value injects nothing.
type Faults struct {
	// Hang holds requests until their context ends or the faults are changed to not hang.
	Hang bool
	// Latency delays every answer.
	Latency time.Duration
	// RateLimited makes that many next requests answer 429 Too Many Requests; -1 means every
	// request until cleared.
	RateLimited int
	// RetryAfter is sent with the 429 answers as Retry-After in whole seconds (rounded up);
	// 0 sends no Retry-After.
	RetryAfter time.Duration
	// ServerErrors makes that many next requests answer ServerErrorStatus; -1 means every request
	// until cleared. RateLimited goes first when both are set.
	ServerErrors int
	// ServerErrorStatus is the status of those answers, 500 to 599; 0 means 503.
	ServerErrorStatus int
	// PathPrefix restricts the faults to paths that start with it; empty means all paths.
	PathPrefix string
}

func (ft Faults) validate() error {
	switch {
	case ft.Latency < 0:
		return fmt.Errorf("partnertest: faults: negative latency %v", ft.Latency)
	case ft.RetryAfter < 0:
		return fmt.Errorf("partnertest: faults: negative retry after %v", ft.RetryAfter)
	case ft.RateLimited < -1:
		return fmt.Errorf("partnertest: faults: rate limited count %d, want -1 or more", ft.RateLimited)
	case ft.ServerErrors < -1:
		return fmt.Errorf("partnertest: faults: server error count %d, want -1 or more", ft.ServerErrors)
	case ft.ServerErrorStatus != 0 && (ft.ServerErrorStatus < 500 || ft.ServerErrorStatus > 599):
		return fmt.Errorf("partnertest: faults: server error status %d, want 500 to 599", ft.ServerErrorStatus)
	}
	return nil
}

// SetFaults replaces the faults in effect. Requests hanging under the old faults are released
// unless ft hangs too.
func (f *Fake) SetFaults(ft Faults) error {
	if err := ft.validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = ft
	switch {
	case ft.Hang && f.hang == nil:
		f.hang = make(chan struct{})
	case !ft.Hang && f.hang != nil:
		close(f.hang)
		f.hang = nil
	}
	return nil
}

// Faults returns the faults in effect, with the counts that remain.
func (f *Fake) Faults() Faults {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.faults
}

// ClearFaults stops injecting faults and releases hanging requests.
func (f *Fake) ClearFaults() {
	_ = f.SetFaults(Faults{}) // the zero Faults is valid
}

// injectFaults applies the faults to r. It returns false when it has answered r (or r's client
// went away), true when r should be served normally.
func (f *Fake) injectFaults(w http.ResponseWriter, r *http.Request) bool {
	f.mu.Lock()
	ft, hang := f.faults, f.hang
	f.mu.Unlock()
	if !strings.HasPrefix(r.URL.Path, ft.PathPrefix) {
		return true
	}
	ctx := r.Context()
	if ft.Hang && hang != nil {
		select {
		case <-ctx.Done():
			return false
		case <-hang:
		}
	}
	if ft.Latency > 0 {
		t := time.NewTimer(ft.Latency)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}

	// The faults may have changed while the request waited: decide on the current ones.
	f.mu.Lock()
	status, retryAfter := 0, time.Duration(0)
	if ft := &f.faults; strings.HasPrefix(r.URL.Path, ft.PathPrefix) {
		switch {
		case ft.RateLimited != 0:
			status, retryAfter = http.StatusTooManyRequests, ft.RetryAfter
			if ft.RateLimited > 0 {
				ft.RateLimited--
			}
		case ft.ServerErrors != 0:
			status = cmp.Or(ft.ServerErrorStatus, http.StatusServiceUnavailable)
			if ft.ServerErrors > 0 {
				ft.ServerErrors--
			}
		}
	}
	f.mu.Unlock()
	if status == 0 {
		return true
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(retryAfter.Seconds())), 10))
	}
	writeProblem(w, status, "fault injected by the fake Partner API")
	return false
}
