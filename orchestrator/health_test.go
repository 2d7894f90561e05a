package orchestrator

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHealth(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	type report struct {
		healthy bool
		reason  string
	}
	var got []report
	h := newHealth(time.Minute, func() time.Time { return now }, func(ok bool, reason string) {
		got = append(got, report{ok, reason})
	})
	down := errors.New("connection refused")
	steps := []struct {
		name    string
		do      func()
		advance time.Duration
		want    *report // nil: no report expected
	}{
		{"success before the first pass says nothing", func() { h.observe(depOpenOBD, nil) }, 0, nil},
		{"first pass done", func() { h.intakeDone() }, 0, &report{true, ""}},
		{"a blip is not an outage", func() { h.observe(depPartner, down) }, 0, nil},
		{"still within the threshold", func() { h.observe(depPartner, down) }, 30 * time.Second, nil},
		{"past the threshold", func() { h.observe(depPartner, down) }, 31 * time.Second, &report{false, "Partner API unreachable"}},
		{"a second dependency adds nothing new", func() { h.observe(depOpenOBD, down) }, 0, nil},
		{"partner back, openOBD still failing but young", func() { h.observe(depPartner, nil) }, 0, &report{true, ""}},
		{"openOBD past the threshold", func() { h.observe(depOpenOBD, down) }, 2 * time.Minute, &report{false, "openOBD unreachable"}},
		{"openOBD back", func() { h.observe(depOpenOBD, nil) }, 0, &report{true, ""}},
		{"etcd stops renewing the lease: at once", func() { h.storeReachable(false, now.Add(-7*time.Second)) }, 0, &report{false, "etcd unreachable: the store lease not renewed since 2026-11-26T12:02:54Z"}},
		{"the lease is lost too", func() { h.fence("store lease lost") }, 0, nil},
		{"etcd answers a new grant", func() { h.storeReachable(true, time.Time{}) }, 0, nil},
		{"the lease is granted again", func() { h.unfence() }, 0, &report{true, ""}},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		before := len(got)
		s.do()
		switch {
		case s.want == nil && len(got) != before:
			t.Errorf("%s: reported %+v, want no report", s.name, got[len(got)-1])
		case s.want != nil && len(got) != before+1:
			t.Errorf("%s: %d reports, want one", s.name, len(got)-before)
		case s.want != nil:
			r := got[len(got)-1]
			if r.healthy != s.want.healthy || !strings.Contains(r.reason, s.want.reason) {
				t.Errorf("%s: reported %+v, want %+v", s.name, r, *s.want)
			}
		}
	}
}
