package admin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/obdorch/obdorch/orchestrator/session"
)

// browserEnv makes the browser test mandatory: CI sets it (and installs
// Debian's chromium), so there the test fails rather than skips when no
// browser is found.
const browserEnv = "OBDORCH_BROWSER_TESTS"

// chromium finds the browser: $OBDORCH_CHROMIUM, else chromium on the PATH.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("OBDORCH_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(browserEnv) == "1" {
		t.Fatalf("%s=1 but no chromium found (apt-get install chromium, or set OBDORCH_CHROMIUM)", browserEnv)
	}
	t.Skipf("no chromium found; install it (apt-get install chromium) or set %s=1 to require it", browserEnv)
	return ""
}

// dashboardSessions is the table size the dashboard must handle.
const dashboardSessions = 2000

// TestDashboardInBrowser drives the dashboard in headless Chromium against
// the admin server with 2,000 sessions: the table renders, a new session
// appears, state changes show live, an admin interrupts a session from the
// page, and a viewer is shown no interrupt and is refused one. It logs the
// first render and the live-update delay (measured, not asserted):
//
//	OBDORCH_BROWSER_TESTS=1 go test -run TestDashboardInBrowser -v ./orchestrator/admin/
func TestDashboardInBrowser(t *testing.T) {
	exe := chromium(t)
	f := newFixture(t, true)
	now := time.Now()
	var ready []string // newest first: the rows at the top of the table
	for i := range dashboardSessions {
		id := fmt.Sprintf("sess-%04d", i)
		at := now.Add(-time.Duration(dashboardSessions-i) * time.Second)
		switch i % 10 {
		case 6, 7:
			rec := f.core.add(id, session.StateRunning, at)
			rec.Lease = &session.Lease{ID: "secret", Holder: "runner-" + id, ExpireAt: now.Add(30 * time.Second)}
			f.core.put(rec)
		case 8:
			f.core.add(id, session.StateFailed, at)
		case 9:
			f.core.add(id, session.StateFinished, at)
		default:
			f.core.add(id, session.StateReady, at)
			ready = append([]string{id}, ready...)
		}
	}

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1400, 1600), // the rows the test clicks are in view
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
	)...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// Each user gets a browser context of its own (separate cookies).
	tab := func() context.Context {
		ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		// The first action opens the tab, which lives as long as the
		// context of that call: run it without a timeout.
		if err := chromedp.Do(ctx); err != nil {
			t.Fatalf("open a tab: %v", err)
		}
		return ctx
	}
	// step bounds one browser action.
	step := func(ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
			defer dcancel()
			state, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`JSON.stringify({rows: window.obdDash && window.obdDash.rows(), first: window.obdDash && window.obdDash.firstRenderMs, conn: document.getElementById('conn').textContent, error: document.getElementById('error').textContent, login: !document.getElementById('login').hidden})`))
			t.Fatalf("%s: %v (page: %s)", what, err, state)
		}
	}
	eval := func(ctx context.Context, expr string) float64 {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		v, err := chromedp.Run(sctx, chromedp.Evaluate[float64](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	total := dashboardSessions
	allRows := fmt.Sprintf(`window.obdDash && window.obdDash.firstRenderMs > 0 && window.obdDash.rows() === %d`, total)
	login := func(ctx context.Context, token string) {
		t.Helper()
		step(ctx, "log in",
			chromedp.Navigate(f.url+"/"),
			chromedp.WaitVisible(chromedp.CSS("#token")),
			chromedp.SendKeys(chromedp.CSS("#token"), token),
			chromedp.Click(chromedp.CSS("#login button")),
			chromedp.Poll[chromedp.Void](allRows),
		)
	}
	// change runs fn and returns the milliseconds until the page has
	// painted session id in state.
	change := func(ctx context.Context, id, state string, fn func()) int64 {
		t.Helper()
		eval(ctx, fmt.Sprintf(`(window.pending = window.obdDash.waitRow(%q, %q), 0)`, id, state))
		start := time.Now()
		fn()
		shown := int64(eval(ctx, `window.pending`))
		return shown - start.UnixMilli()
	}

	admin := tab()
	login(admin, adminToken)

	// First render: a fresh load with 2,000 sessions, from navigation
	// start to the painted table.
	var renders []float64
	for range 3 {
		step(admin, "reload", chromedp.Navigate(f.url+"/"), chromedp.Poll[chromedp.Void](allRows))
		renders = append(renders, eval(admin, `window.obdDash.firstRenderMs`))
	}

	// A new session appears.
	appear := change(admin, "sess-new", "PENDING", func() { f.core.add("sess-new", session.StatePending, time.Now()) })
	total++

	// State changes show live.
	var updates []int64
	for _, id := range ready[:10] {
		updates = append(updates, change(admin, id, "RUNNING", func() {
			if err := f.core.transition(id, session.StateRunning, "bot", "acquired by bot"); err != nil {
				t.Fatal(err)
			}
		}))
	}

	// The admin interrupts a session from its detail panel.
	victim := ready[10]
	step(admin, "open the session",
		clickRow(victim),
		chromedp.WaitVisible(chromedp.CSS("#interrupt")),
	)
	interrupted := change(admin, victim, "INTERRUPTED", func() {
		step(admin, "interrupt",
			chromedp.SendKeys(chromedp.CSS("#reason"), "vehicle needed on the bench"),
			chromedp.Click(chromedp.CSS("#interrupt button")),
		)
	})
	if rec, _ := f.core.GetSession(t.Context(), victim); rec.State != session.StateInterrupted || rec.Actor != "ada" || rec.Reason != "vehicle needed on the bench" {
		t.Errorf("after the admin's interrupt: state %s actor %q reason %q", rec.State, rec.Actor, rec.Reason)
	}
	step(admin, "history shows the interrupt", chromedp.Poll[chromedp.Void](
		`document.getElementById('d-history').textContent.includes('vehicle needed on the bench')`))

	// A viewer sees the same table, no interrupt form, and is refused.
	viewer := tab()
	allRows = fmt.Sprintf(`window.obdDash && window.obdDash.firstRenderMs > 0 && window.obdDash.rows() === %d`, total)
	login(viewer, viewerToken)
	other := ready[11]
	step(viewer, "open a session as viewer",
		clickRow(other),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.getElementById('d-title').textContent === %q && !document.getElementById('detail').hidden`, other)),
	)
	if hidden := eval(viewer, `document.getElementById('interrupt').hidden ? 1 : 0`); hidden != 1 {
		t.Error("the interrupt form is shown to a viewer")
	}
	status := eval(viewer, fmt.Sprintf(`fetch('api/sessions/%s/interrupt', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: '{"reason":"viewer try"}'}).then(r => r.status)`, other))
	if status != 403 {
		t.Errorf("a viewer's interrupt from the page = %v, want 403", status)
	}
	if rec, _ := f.core.GetSession(t.Context(), other); rec.State != session.StateReady {
		t.Errorf("session %s is %s after a viewer's refused interrupt", other, rec.State)
	}
	// The viewer's page follows changes too.
	viewerUpdate := change(viewer, other, "RUNNING", func() {
		if err := f.core.transition(other, session.StateRunning, "bot", "acquired by bot"); err != nil {
			t.Fatal(err)
		}
	})

	slices.Sort(updates)
	t.Logf("dashboard with %d sessions: first render %.0f ms (fresh loads: %.0f ms)", dashboardSessions, slices.Min(renders), renders)
	t.Logf("live update to paint: median %d ms, max %d ms over %d changes (all: %d ms); new session %d ms; interrupt click to paint %d ms; viewer %d ms",
		updates[len(updates)/2], updates[len(updates)-1], len(updates), updates, appear, interrupted, viewerUpdate)
}

// clickRow clicks the table row of a session from the page itself, trying
// again until it is there: live updates redraw rows, so a node found by one
// DevTools call may be gone by the next.
func clickRow(id string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](fmt.Sprintf(
		`(() => { const r = document.querySelector('tr[data-id=%q]'); if (!r) return false; r.click(); return true; })()`, id))
}
