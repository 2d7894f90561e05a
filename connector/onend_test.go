package connector_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/obdorch/obdorch/connector"
)

// TestOnEnd proves OnEnd reports an end on the server once, with its kind,
// and stays silent when the caller closes the session itself.
func TestOnEnd(t *testing.T) {
	e := newEnv(t)
	var (
		mu   sync.Mutex
		ends []error
	)
	record := connector.OnEnd(func(err error) {
		mu.Lock()
		defer mu.Unlock()
		ends = append(ends, err)
	})
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(ends)
	}

	s, info := e.attach(t, record)
	if _, err := e.srv.InterruptSession(info.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "OnEnd after an interrupt", func() bool { return count() == 1 })
	mu.Lock()
	if got := connector.KindOf(ends[0]); got != connector.KindInterrupted {
		t.Errorf("OnEnd(err) kind = %v, want interrupted", got)
	}
	mu.Unlock()
	s.Close()
	if n := count(); n != 1 {
		t.Errorf("OnEnd called %d times, want once", n)
	}

	closed, _ := e.attach(t, record)
	closed.Close()
	if n := count(); n != 1 {
		t.Errorf("OnEnd called after Close: %d calls, want 1", n)
	}
	if !errors.Is(closed.Err(), connector.ErrClosed) {
		t.Errorf("Err() after Close = %v, want ErrClosed", closed.Err())
	}
}
