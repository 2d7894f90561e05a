// Package leakcheck is the goroutine-leak check of the packages whose tests
// run embedded etcd members: goleak's check, after a wait for goroutines
// that end on their own deadline.
//
// A stopped embedded etcd member's peer connection can outlive the member:
// its peer listener sets a 5 s read deadline at every read, which can
// override the deadline the HTTP server sets to end a connection at close,
// so such a connection ends only when that read deadline passes. goleak's
// own retries (about a second in all) do not cover it.
package leakcheck

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Settle waits, up to 10 s, until goleak finds no goroutine beyond those
// opts ignore.
func Settle(opts ...goleak.Option) {
	for range 100 {
		if goleak.Find(opts...) == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// VerifyTestMain is goleak.VerifyTestMain with Settle between the tests and
// the check. Call it from TestMain.
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	goleak.VerifyTestMain(settled{m, opts}, opts...)
}

type settled struct {
	m    *testing.M
	opts []goleak.Option
}

func (s settled) Run() int {
	code := s.m.Run()
	Settle(s.opts...)
	return code
}
