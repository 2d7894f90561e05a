package orchestrator

import (
	"sort"
	"strings"
	"sync"
	"time"
)

// The dependencies whose reachability decides health.
const (
	depPartner = "Partner API"
	depOpenOBD = "openOBD"
)

// health decides whether the orchestrator can do its work: the first intake
// pass is done and no dependency has been unreachable for longer than the
// threshold. A short blip does not count. It reports changes only.
type health struct {
	threshold time.Duration
	now       func() time.Time
	report    func(healthy bool, reason string)

	mu    sync.Mutex
	ready bool
	// fenced says why the replica cannot act at all (its store lease is
	// lost); it makes the replica unhealthy at once.
	fenced string
	// storeDown says why the store is unreachable (etcd has not renewed
	// the replica's lease lately); it makes the replica unhealthy at once,
	// before the lease is lost.
	storeDown string
	failing   map[string]failure
	known     bool
	reported  bool
}

type failure struct {
	since time.Time
	err   error
}

func newHealth(threshold time.Duration, now func() time.Time, report func(bool, string)) *health {
	return &health{threshold: threshold, now: now, report: report, failing: map[string]failure{}}
}

// intakeDone records that an intake pass finished; it reports whether it
// was the first.
func (h *health) intakeDone() bool {
	h.mu.Lock()
	first := !h.ready
	h.ready = true
	h.mu.Unlock()
	h.evaluate()
	return first
}

// fence makes the replica unhealthy at once with reason; unfence ends it.
func (h *health) fence(reason string) {
	h.mu.Lock()
	h.fenced = reason
	h.mu.Unlock()
	h.evaluate()
}

func (h *health) unfence() { h.fence("") }

// storeReachable records whether the store is reachable; since is when
// etcd last answered, if it is not.
func (h *health) storeReachable(reachable bool, since time.Time) {
	h.mu.Lock()
	h.storeDown = ""
	if !reachable {
		h.storeDown = "etcd unreachable: the store lease not renewed since " + since.Format(time.RFC3339)
	}
	h.mu.Unlock()
	h.evaluate()
}

// observe records the result of a call to a dependency.
func (h *health) observe(dep string, err error) {
	h.mu.Lock()
	if err == nil {
		delete(h.failing, dep)
	} else if f, ok := h.failing[dep]; ok {
		f.err = err
		h.failing[dep] = f
	} else {
		h.failing[dep] = failure{since: h.now(), err: err}
	}
	h.mu.Unlock()
	h.evaluate()
}

func (h *health) evaluate() {
	h.mu.Lock()
	if !h.ready && len(h.failing) == 0 && h.fenced == "" && h.storeDown == "" {
		h.mu.Unlock()
		return // nothing to say yet: the server starts NOT_SERVING
	}
	now := h.now()
	var reasons []string
	for dep, f := range h.failing {
		if !h.ready || now.Sub(f.since) >= h.threshold {
			reasons = append(reasons, dep+" unreachable since "+f.since.Format(time.RFC3339)+": "+f.err.Error())
		}
	}
	sort.Strings(reasons)
	if h.storeDown != "" {
		reasons = append([]string{h.storeDown}, reasons...)
	}
	if h.fenced != "" {
		reasons = append([]string{h.fenced}, reasons...)
	}
	healthy := h.ready && len(reasons) == 0
	changed := !h.known || healthy != h.reported
	h.known, h.reported = true, healthy
	h.mu.Unlock()
	if changed {
		h.report(healthy, strings.Join(reasons, "; "))
	}
}
