package partner_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/obdorch/obdorch/partner"
	"github.com/obdorch/obdorch/partner/partnertest"
)

// clock is a fake clock whose Sleep records the wait and moves time on, so no test sleeps.
type clock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newClock() *clock {
	return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

func (c *clock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sleeps)
}

// newClient returns a client of srv on a fake clock; edit adjusts its config.
func newClient(t testing.TB, srv *partnertest.Server, edit func(*partner.Config)) (*partner.Client, *clock) {
	t.Helper()
	cfg := srv.ClientConfig()
	if edit != nil {
		edit(&cfg)
	}
	c, err := partner.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient() = %v", err)
	}
	clk := newClock()
	partner.SetClock(c, clk.Now, clk.Sleep)
	return c, clk
}

func setFaults(t testing.TB, f *partnertest.Server, ft partnertest.Faults) {
	t.Helper()
	if err := f.SetFaults(ft); err != nil {
		t.Fatalf("SetFaults(%+v) = %v", ft, err)
	}
}

// waitFor polls cond until it holds; for synchronising with requests in flight, not for timing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // a bound on the wait, not a speed
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func seeded(t testing.TB, n int) (*partnertest.Server, []partner.Ticket) {
	srv := partnertest.NewServer(t, partnertest.Options{})
	return srv, srv.Seed(n, 1)
}

func TestTokenSingleFlight(t *testing.T) {
	srv, tickets := seeded(t, 1)
	c, _ := newClient(t, srv, nil)
	// Slow token answers make sure the callers overlap.
	setFaults(t, srv, partnertest.Faults{Latency: 50 * time.Millisecond, PathPrefix: partner.PathToken})

	const callers = 50
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			_, err := c.Ticket(t.Context(), tickets[0].ID)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Ticket() = %v", err)
		}
	}
	got := srv.Requests()
	if got[partner.PathToken] != 1 || got[partner.PathTickets+"/"+tickets[0].ID] != callers {
		t.Errorf("requests = %v, want 1 token request and %d ticket requests", got, callers)
	}
}

func TestTokenRefreshAtHalfLife(t *testing.T) {
	srv, tickets := seeded(t, 1)
	c, clk := newClient(t, srv, nil)
	steps := []struct {
		advance    time.Duration
		wantTokens int
	}{
		{0, 1},
		{29 * time.Minute, 1},
		{2 * time.Minute, 2}, // 31 minutes into a 60-minute token
		{29 * time.Minute, 2},
		{2 * time.Minute, 3},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		if _, err := c.Ticket(t.Context(), tickets[0].ID); err != nil {
			t.Fatalf("Ticket() = %v", err)
		}
		if got := srv.Requests()[partner.PathToken]; got != s.wantTokens {
			t.Errorf("after %v more: token requests = %d, want %d", s.advance, got, s.wantTokens)
		}
	}
}

func TestTokenWaitersHonourTheirContexts(t *testing.T) {
	srv, tickets := seeded(t, 1)
	c, _ := newClient(t, srv, nil)
	setFaults(t, srv, partnertest.Faults{Hang: true, PathPrefix: partner.PathToken})

	leaderCtx, cancelLeader := context.WithCancel(t.Context())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := c.Ticket(leaderCtx, tickets[0].ID)
		leaderErr <- err
	}()
	waitFor(t, "the first token request", func() bool { return srv.Requests()[partner.PathToken] == 1 })

	// A waiter whose context ends gives up at once, without disturbing the request in flight.
	gone, cancelGone := context.WithCancel(t.Context())
	cancelGone()
	if _, err := c.Ticket(gone, tickets[0].ID); !errors.Is(err, context.Canceled) {
		t.Errorf("Ticket(cancelled context) = %v, want context.Canceled", err)
	}

	// A patient waiter takes over when the first caller gives up.
	waiterErr := make(chan error, 1)
	go func() {
		_, err := c.Ticket(t.Context(), tickets[0].ID)
		waiterErr <- err
	}()
	cancelLeader()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Errorf("Ticket(leader) = %v, want context.Canceled", err)
	}
	waitFor(t, "the second token request", func() bool { return srv.Requests()[partner.PathToken] == 2 })
	srv.ClearFaults()
	if err := <-waiterErr; err != nil {
		t.Errorf("Ticket(waiter) = %v, want success", err)
	}
	if got := srv.Requests()[partner.PathToken]; got != 2 {
		t.Errorf("token requests = %d, want 2", got)
	}
}

func TestReauthenticatesOnceOn401(t *testing.T) {
	srv, tickets := seeded(t, 1)
	c, _ := newClient(t, srv, nil)
	path := partner.PathTickets + "/" + tickets[0].ID
	if _, err := c.Ticket(t.Context(), tickets[0].ID); err != nil {
		t.Fatalf("Ticket() = %v", err)
	}
	srv.ExpireTokens()
	if _, err := c.Ticket(t.Context(), tickets[0].ID); err != nil {
		t.Fatalf("Ticket() after ExpireTokens = %v", err)
	}
	got := srv.Requests()
	if got[partner.PathToken] != 2 || got[path] != 3 {
		t.Errorf("requests = %v, want 2 token requests and 3 ticket requests", got)
	}
}

func TestGivesUpWhenFreshTokenIsRefused(t *testing.T) {
	// The fake's clock runs two hours ahead each time it is read: every token it checks has
	// expired.
	var mu sync.Mutex
	fakeNow := time.Now()
	srv := partnertest.NewServer(t, partnertest.Options{Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		fakeNow = fakeNow.Add(2 * time.Hour)
		return fakeNow
	}})
	c, _ := newClient(t, srv, nil)
	_, err := c.Ticket(t.Context(), "4b7f8a4e-0000-4000-8000-000000000000")
	if !errors.Is(err, partner.ErrUnauthorized) {
		t.Errorf("Ticket() = %v, want ErrUnauthorized", err)
	}
	got := srv.Requests()
	if got[partner.PathToken] != 2 || got[partner.PathTickets+"/4b7f8a4e-0000-4000-8000-000000000000"] != 2 {
		t.Errorf("requests = %v, want 2 token requests and 2 ticket requests", got)
	}
}

func TestBadCredentials(t *testing.T) {
	srv, tickets := seeded(t, 1)
	c, _ := newClient(t, srv, func(cfg *partner.Config) { cfg.ClientSecret = "wrong" })
	_, err := c.Ticket(t.Context(), tickets[0].ID)
	if !errors.Is(err, partner.ErrUnauthorized) {
		t.Errorf("Ticket() = %v, want ErrUnauthorized", err)
	}
	if got := srv.Requests(); got[partner.PathToken] != 1 || len(got) != 1 {
		t.Errorf("requests = %v, want a single token request", got)
	}
}

func TestTicketsPagesLazily(t *testing.T) {
	srv, tickets := seeded(t, 25)
	tests := []struct {
		name      string
		paging    partner.Paging
		stopAfter int // 0: iterate to the end
		want      []partner.Ticket
	}{
		{
			name:   "all in pages of 10",
			paging: partner.Paging{PageSize: 10},
			want:   tickets,
		},
		{
			name:      "stop in the second page",
			paging:    partner.Paging{PageSize: 10},
			stopAfter: 12,
			want:      tickets[:12],
		},
		{
			name:   "offset",
			paging: partner.Paging{PageSize: 10, Offset: 20},
			want:   tickets[20:],
		},
		{
			name: "default page size",
			want: tickets,
		},
		{
			name:   "exact multiple",
			paging: partner.Paging{PageSize: 5},
			want:   tickets,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.ResetRequests()
			c, _ := newClient(t, srv, nil)
			size := tt.paging.PageSize
			if size == 0 {
				size = partner.DefaultPageSize
			}
			var ids []string
			for tk, err := range c.Tickets(t.Context(), partner.TicketFilter{Paging: tt.paging}) {
				if err != nil {
					t.Fatalf("Tickets() yielded %v", err)
				}
				ids = append(ids, tk.ID)
				// The page holding this ticket has been fetched, and no later one.
				if got, want := srv.Requests()[partner.PathTickets], (len(ids)-1)/size+1; got != want {
					t.Fatalf("at ticket %d: page requests = %d, want %d", len(ids), got, want)
				}
				if len(ids) == tt.stopAfter {
					break
				}
			}
			var want []string
			for _, tk := range tt.want {
				want = append(want, tk.ID)
			}
			if diff := cmp.Diff(want, ids); diff != "" {
				t.Errorf("Tickets() ids (-want +got):\n%s", diff)
			}
			// The envelope's total tells when the last page has been read: no extra request.
			wantPages := (len(want)-1)/size + 1
			if got := srv.Requests()[partner.PathTickets]; got != wantPages {
				t.Errorf("page requests = %d, want %d", got, wantPages)
			}
		})
	}
}

func TestTicketFilters(t *testing.T) {
	srv := partnertest.NewServer(t, partnertest.Options{})
	add := func(state partner.TicketState, processed bool) partner.Ticket {
		tk, err := srv.AddTicket(partner.Ticket{State: state, ExternallyProcessed: processed})
		if err != nil {
			t.Fatalf("AddTicket() = %v", err)
		}
		return tk
	}
	pending := add(partner.TicketPending, false)
	done := add(partner.TicketPending, true)
	closed := add(partner.TicketClosed, true)
	inProgress := add(partner.TicketInProgress, false)
	yes, no := true, false

	tests := []struct {
		name   string
		filter partner.TicketFilter
		want   []partner.Ticket
	}{
		{"none", partner.TicketFilter{}, []partner.Ticket{pending, done, closed, inProgress}},
		{"state", partner.TicketFilter{State: partner.TicketPending}, []partner.Ticket{pending, done}},
		{"not processed", partner.TicketFilter{ExternallyProcessed: &no}, []partner.Ticket{pending, inProgress}},
		{"intake", partner.TicketFilter{State: partner.TicketPending, ExternallyProcessed: &no}, []partner.Ticket{pending}},
		{"processed", partner.TicketFilter{ExternallyProcessed: &yes}, []partner.Ticket{done, closed}},
		{"number", partner.TicketFilter{TicketNumber: closed.TicketNumber}, []partner.Ticket{closed}},
		{"nothing", partner.TicketFilter{State: partner.TicketOutsourced}, nil},
	}
	c, _ := newClient(t, srv, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int64
			for tk, err := range c.Tickets(t.Context(), tt.filter) {
				if err != nil {
					t.Fatalf("Tickets(%+v) yielded %v", tt.filter, err)
				}
				got = append(got, tk.TicketNumber)
			}
			var want []int64
			for _, tk := range tt.want {
				want = append(want, tk.TicketNumber)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Tickets(%+v) numbers (-want +got):\n%s", tt.filter, diff)
			}
		})
	}

	t.Run("by number", func(t *testing.T) {
		got, err := c.TicketByNumber(t.Context(), inProgress.TicketNumber)
		if err != nil || got.ID != inProgress.ID {
			t.Errorf("TicketByNumber(%d) = %s, %v, want %s", inProgress.TicketNumber, got.ID, err, inProgress.ID)
		}
		if _, err := c.TicketByNumber(t.Context(), 99); !errors.Is(err, partner.ErrNotFound) {
			t.Errorf("TicketByNumber(99) = %v, want ErrNotFound", err)
		}
	})
}

func TestInvalidArgumentsMakeNoRequest(t *testing.T) {
	srv, _ := seeded(t, 1)
	c, _ := newClient(t, srv, nil)
	tests := []struct {
		name   string
		filter partner.TicketFilter
	}{
		{"page size too big", partner.TicketFilter{Paging: partner.Paging{PageSize: partner.MaxPageSize + 1}}},
		{"negative page size", partner.TicketFilter{Paging: partner.Paging{PageSize: -1}}},
		{"negative offset", partner.TicketFilter{Paging: partner.Paging{Offset: -1}}},
		{"unknown state", partner.TicketFilter{State: "open"}},
		{"negative ticket number", partner.TicketFilter{TicketNumber: -7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			for _, err := range c.Tickets(t.Context(), tt.filter) {
				n++
				if !errors.Is(err, partner.ErrInvalidArgument) {
					t.Errorf("Tickets(%+v) yielded %v, want ErrInvalidArgument", tt.filter, err)
				}
			}
			if n != 1 {
				t.Errorf("Tickets(%+v) yielded %d values, want 1", tt.filter, n)
			}
		})
	}
	if _, err := c.Ticket(t.Context(), ""); !errors.Is(err, partner.ErrInvalidArgument) {
		t.Errorf("Ticket(\"\") = %v, want ErrInvalidArgument", err)
	}
	if got := srv.Requests(); len(got) != 0 {
		t.Errorf("requests = %v, want none", got)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	srv, tickets := seeded(t, 1)
	path := partner.PathTickets + "/" + tickets[0].ID
	tests := []struct {
		name         string
		faults       partnertest.Faults
		wantErr      error
		wantSleeps   []time.Duration
		wantRequests int
	}{
		{
			name:         "two 429 then success",
			faults:       partnertest.Faults{RateLimited: 2, RetryAfter: 7 * time.Second, PathPrefix: path},
			wantSleeps:   []time.Duration{7 * time.Second, 7 * time.Second},
			wantRequests: 3,
		},
		{
			name:         "Retry-After beyond the budget ends the call at once",
			faults:       partnertest.Faults{RateLimited: -1, RetryAfter: 2 * time.Minute, PathPrefix: path},
			wantErr:      partner.ErrRateLimited,
			wantSleeps:   nil,
			wantRequests: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, clk := newClient(t, srv, nil)
			if _, err := c.Ticket(t.Context(), tickets[0].ID); err != nil { // get the token first
				t.Fatalf("Ticket() = %v", err)
			}
			srv.ResetRequests()
			setFaults(t, srv, tt.faults)
			defer srv.ClearFaults()

			_, err := c.Ticket(t.Context(), tickets[0].ID)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Ticket() = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantSleeps, clk.Sleeps()); diff != "" {
				t.Errorf("sleeps (-want +got):\n%s", diff)
			}
			if got := srv.Requests()[path]; got != tt.wantRequests {
				t.Errorf("requests = %d, want %d", got, tt.wantRequests)
			}
		})
	}
}

func TestServerErrorsEndInTypedErrorWithinBudget(t *testing.T) {
	srv, tickets := seeded(t, 1)
	path := partner.PathTickets + "/" + tickets[0].ID
	tests := []struct {
		name         string
		cfg          func(*partner.Config)
		wantRequests int
	}{
		{
			name:         "max retries",
			cfg:          func(c *partner.Config) { c.MaxRetries = 3 },
			wantRequests: 4,
		},
		{
			name:         "no retries",
			cfg:          func(c *partner.Config) { c.MaxRetries = -1 },
			wantRequests: 1,
		},
		{
			// Waits of about 1, 2, 4 s (±50%) fit into 10 s; the next does not.
			name: "max elapsed",
			cfg: func(c *partner.Config) {
				c.MaxRetries = 100
				c.MaxRetryElapsed = 10 * time.Second
				c.RetryInitialInterval = time.Second
				c.RetryMaxInterval = time.Minute
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, clk := newClient(t, srv, tt.cfg)
			if _, err := c.Ticket(t.Context(), tickets[0].ID); err != nil {
				t.Fatalf("Ticket() = %v", err)
			}
			srv.ResetRequests()
			setFaults(t, srv, partnertest.Faults{ServerErrors: -1, ServerErrorStatus: 502, PathPrefix: path})
			defer srv.ClearFaults()

			_, err := c.Ticket(t.Context(), tickets[0].ID)
			apiErr, ok := errors.AsType[*partner.APIError](err)
			if !ok || apiErr.StatusCode != http.StatusBadGateway || !apiErr.Temporary() {
				t.Fatalf("Ticket() = %v, want a temporary *APIError with status 502", err)
			}
			if apiErr.Method != http.MethodGet || apiErr.Path != path {
				t.Errorf("APIError request = %s %s, want GET %s", apiErr.Method, apiErr.Path, path)
			}
			sleeps := clk.Sleeps()
			var total time.Duration
			for _, s := range sleeps {
				total += s
			}
			got := srv.Requests()[path]
			if got != len(sleeps)+1 {
				t.Errorf("requests = %d, want one more than the %d waits", got, len(sleeps))
			}
			if tt.wantRequests != 0 && got != tt.wantRequests {
				t.Errorf("requests = %d, want %d", got, tt.wantRequests)
			}
			if total > 10*time.Second || got > 10 {
				t.Errorf("waited %v over %d requests, want at most 10s and 10 requests", total, got)
			}
		})
	}
}

func TestRetriesTransportFailures(t *testing.T) {
	srv, tickets := seeded(t, 1)
	c, _ := newClient(t, srv, func(c *partner.Config) {
		c.Timeout = 20 * time.Millisecond
		c.MaxRetries = 2
	})
	if _, err := c.Ticket(t.Context(), tickets[0].ID); err != nil {
		t.Fatalf("Ticket() = %v", err)
	}
	path := partner.PathTickets + "/" + tickets[0].ID
	srv.ResetRequests()
	setFaults(t, srv, partnertest.Faults{Hang: true, PathPrefix: path})
	_, err := c.Ticket(t.Context(), tickets[0].ID)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ticket(hanging server) = %v, want a deadline error", err)
	}
	if got := srv.Requests()[path]; got != 3 {
		t.Errorf("requests = %d, want 3", got)
	}
}

func TestContextCancelledWhileWaitingToRetry(t *testing.T) {
	srv, tickets := seeded(t, 1)
	c, clk := newClient(t, srv, nil)
	if _, err := c.Ticket(t.Context(), tickets[0].ID); err != nil {
		t.Fatalf("Ticket() = %v", err)
	}
	path := partner.PathTickets + "/" + tickets[0].ID
	srv.ResetRequests()
	setFaults(t, srv, partnertest.Faults{ServerErrors: -1, PathPrefix: path})

	ctx, cancel := context.WithCancel(t.Context())
	partner.SetClock(c, clk.Now, func(ctx context.Context, d time.Duration) error {
		cancel() // the caller gives up during the first wait
		<-ctx.Done()
		return ctx.Err()
	})
	_, err := c.Ticket(ctx, tickets[0].ID)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Ticket() = %v, want context.Canceled", err)
	}
	if _, ok := errors.AsType[*partner.APIError](err); !ok {
		t.Errorf("Ticket() = %v, want it to carry the last *APIError too", err)
	}
	if got := srv.Requests()[path]; got != 1 {
		t.Errorf("requests = %d, want 1", got)
	}
}

func TestContextCancelledDuringRequest(t *testing.T) {
	srv, tickets := seeded(t, 1)
	c, _ := newClient(t, srv, nil)
	setFaults(t, srv, partnertest.Faults{Hang: true})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Ticket(ctx, tickets[0].ID)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ticket() = %v, want context.DeadlineExceeded", err)
	}
	if got := srv.Requests(); got[partner.PathToken] != 1 || len(got) != 1 {
		t.Errorf("requests = %v, want one token request", got)
	}
}

func TestUpdateTicket(t *testing.T) {
	srv, tickets := seeded(t, 1)
	ref, yes := "session-42", true
	update := partner.TicketUpdate{ExternalReference: &ref, ExternallyProcessed: &yes}

	t.Run("disabled", func(t *testing.T) {
		c, _ := newClient(t, srv, nil)
		srv.ResetRequests()
		_, err := c.UpdateTicket(t.Context(), tickets[0].ID, update)
		if !errors.Is(err, partner.ErrTicketWriteDisabled) {
			t.Errorf("UpdateTicket() = %v, want ErrTicketWriteDisabled", err)
		}
		if got := srv.Requests(); len(got) != 0 {
			t.Errorf("requests = %v, want none", got)
		}
	})
	t.Run("enabled", func(t *testing.T) {
		c, _ := newClient(t, srv, func(c *partner.Config) { c.AllowTicketWrite = true })
		got, err := c.UpdateTicket(t.Context(), tickets[0].ID, update)
		if err != nil || got.ExternalReference != ref || !got.ExternallyProcessed {
			t.Fatalf("UpdateTicket() = %+v, %v, want reference %q and processed", got, err, ref)
		}
		stored, _ := srv.Ticket(tickets[0].ID)
		if stored.ExternalReference != ref || !stored.ExternallyProcessed {
			t.Errorf("fake ticket = %q, %v, want %q, true", stored.ExternalReference, stored.ExternallyProcessed, ref)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		c, _ := newClient(t, srv, func(c *partner.Config) { c.AllowTicketWrite = true })
		long := string(make([]byte, 256))
		for _, u := range []partner.TicketUpdate{{}, {ExternalReference: &long}} {
			if _, err := c.UpdateTicket(t.Context(), tickets[0].ID, u); !errors.Is(err, partner.ErrInvalidArgument) {
				t.Errorf("UpdateTicket(%+v) = %v, want ErrInvalidArgument", u, err)
			}
		}
	})
	t.Run("unknown ticket", func(t *testing.T) {
		c, _ := newClient(t, srv, func(c *partner.Config) { c.AllowTicketWrite = true })
		_, err := c.UpdateTicket(t.Context(), "no-such-ticket", update)
		if !errors.Is(err, partner.ErrNotFound) {
			t.Errorf("UpdateTicket(unknown) = %v, want ErrNotFound", err)
		}
	})
}

func TestNotFoundCarriesProblem(t *testing.T) {
	srv, _ := seeded(t, 1)
	c, _ := newClient(t, srv, nil)
	_, err := c.Ticket(t.Context(), "7f0b5f5e-1111-4111-8111-111111111111")
	apiErr, ok := errors.AsType[*partner.APIError](err)
	if !ok || !errors.Is(err, partner.ErrNotFound) || apiErr.Problem == nil {
		t.Fatalf("Ticket(unknown) = %v, want a 404 *APIError with a problem", err)
	}
	if want := `ticket "7f0b5f5e-1111-4111-8111-111111111111" not found`; apiErr.Problem.Detail != want {
		t.Errorf("Problem.Detail = %q, want %q", apiErr.Problem.Detail, want)
	}
	if apiErr.Temporary() {
		t.Errorf("APIError{404}.Temporary() = true, want false")
	}
}

func TestConnectors(t *testing.T) {
	srv, tickets := seeded(t, 8) // 8 busy connectors and 3 free ones
	c, _ := newClient(t, srv, nil)
	var free, busy int
	for conn, err := range c.Connectors(t.Context(), partner.Paging{PageSize: 4}) {
		if err != nil {
			t.Fatalf("Connectors() yielded %v", err)
		}
		if conn.Free() {
			free++
		} else {
			busy++
		}
	}
	if free != 3 || busy != 8 {
		t.Errorf("Connectors() free, busy = %d, %d, want 3, 8", free, busy)
	}
	id := *tickets[0].CustomerConnectorID
	conn, err := c.Connector(t.Context(), id)
	if err != nil || conn.Free() || conn.ActiveTicketID == nil || *conn.ActiveTicketID != tickets[0].ID {
		t.Errorf("Connector(%s) = %+v, %v, want busy with ticket %s", id, conn, err, tickets[0].ID)
	}
}

// sessions is a SessionBackend over a fixed set of sessions.
type sessions struct {
	mu   sync.Mutex
	list []partner.Session
}

func (s *sessions) ListSessions() []partner.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.list)
}

func (s *sessions) GetSession(id string) (partner.Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.list {
		if v.ID == id {
			return v, true
		}
	}
	return partner.Session{}, false
}

func (s *sessions) InterruptSession(id string) (partner.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, v := range s.list {
		if v.ID != id {
			continue
		}
		if !v.State.Live() {
			return v, partnertest.ErrNotInterruptible
		}
		s.list[i].State = partner.SessionInterrupted
		return s.list[i], nil
	}
	return partner.Session{}, partnertest.ErrNotFound
}

func TestSessions(t *testing.T) {
	srv := partnertest.NewServer(t, partnertest.Options{})
	created := time.Date(2026, 2, 3, 4, 5, 6, 651e6, time.UTC)
	backend := &sessions{}
	for i, st := range []partner.SessionState{partner.SessionActive, partner.SessionFinished, partner.SessionAvailable} {
		backend.list = append(backend.list, partner.Session{
			ID:                  fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", i),
			State:               st,
			CreatedAt:           partner.Time{Time: created},
			GRPCEndpoint:        "grpc.example.test",
			AuthenticationToken: "one-time",
		})
	}
	c, _ := newClient(t, srv, nil)

	var none []partner.Session
	for s, err := range c.Sessions(t.Context(), partner.Paging{}) {
		if err != nil {
			t.Fatalf("Sessions() without backend yielded %v", err)
		}
		none = append(none, s)
	}
	if len(none) != 0 {
		t.Errorf("Sessions() without backend = %v, want none", none)
	}

	srv.SetSessionBackend(backend)
	var got []partner.Session
	for s, err := range c.Sessions(t.Context(), partner.Paging{PageSize: 2}) {
		if err != nil {
			t.Fatalf("Sessions() yielded %v", err)
		}
		got = append(got, s)
	}
	if diff := cmp.Diff(backend.ListSessions(), got, cmp.Comparer(func(a, b partner.Time) bool { return a.Equal(b.Time) })); diff != "" {
		t.Errorf("Sessions() (-want +got):\n%s", diff)
	}

	s, err := c.InterruptSession(t.Context(), backend.list[0].ID)
	if err != nil || s.State != partner.SessionInterrupted {
		t.Errorf("InterruptSession(active) = %v, %v, want state interrupted", s.State, err)
	}
	_, err = c.InterruptSession(t.Context(), backend.list[1].ID)
	if apiErr, ok := errors.AsType[*partner.APIError](err); !ok || apiErr.StatusCode != http.StatusConflict {
		t.Errorf("InterruptSession(finished) = %v, want a 409 *APIError", err)
	}
	if _, err := c.Session(t.Context(), "nope"); !errors.Is(err, partner.ErrNotFound) {
		t.Errorf("Session(unknown) = %v, want ErrNotFound", err)
	}
	if s, err := c.Session(t.Context(), backend.list[2].ID); err != nil || s.State != partner.SessionAvailable {
		t.Errorf("Session(available) = %v, %v, want state available", s.State, err)
	}
}
