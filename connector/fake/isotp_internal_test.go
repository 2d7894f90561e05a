package fake

import (
	"slices"
	"sync"
	"testing"
	"time"

	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// lockWait bounds how long a test waits for an ISO-TP answer that must not
// depend on a lock the test holds.
const lockWait = 5 * time.Second

// TestIsotpTakesNoServerWideLock answers a request while the test holds
// Server.mu and Faults.mu: ISO-TP messages of one session do not wait for
// the server's tables or for the fault settings.
func TestIsotpTakesNoServerWideLock(t *testing.T) {
	s, sess := fuzzSession(t)
	ch := &openobdv1.IsotpChannel{BusName: "bus", RequestId: 0x7E0, ResponseId: 0x7E8}
	var got []string
	done := make(chan error, 1)

	s.mu.Lock()
	s.faults.mu.Lock()
	go func() {
		done <- s.isotp(t.Context(), sess, &openobdv1.IsotpMessage{Channel: ch, Payload: "22F190"}, func(m *openobdv1.IsotpMessage) error {
			got = append(got, m.GetPayload())
			return nil
		})
	}()
	timer := time.NewTimer(lockWait)
	defer timer.Stop()
	var err error
	blocked := false
	select {
	case err = <-done:
	case <-timer.C:
		blocked = true
	}
	s.faults.mu.Unlock()
	s.mu.Unlock()
	if blocked {
		<-done
		t.Fatalf("isotp(22F190) did not answer within %v while Server.mu and Faults.mu were held", lockWait)
	}
	want := []string{"62F190" + EncodePayload([]byte(DefaultVIN))}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("isotp(22F190) = %v, %v; want %v, nil", got, err, want)
	}
}

// TestIsotpWhileSteering runs ISO-TP requests of several streams while the
// faults and the connector's link change under them (for the race detector)
// and checks that every answer is one the settings of the moment allow.
func TestIsotpWhileSteering(t *testing.T) {
	s, sess := fuzzSession(t)
	ch := &openobdv1.IsotpChannel{BusName: "bus", RequestId: 0x7E0, ResponseId: 0x7E8}
	const streams, requests = 4, 200
	allowed := []string{"7E00", "7F3E21"} // answer, busyRepeatRequest

	var wg sync.WaitGroup
	errs := make(chan error, streams)
	bad := make(chan string, streams)
	for range streams {
		wg.Go(func() {
			for range requests {
				err := s.isotp(t.Context(), sess, &openobdv1.IsotpMessage{Channel: ch, Payload: "3E00"}, func(m *openobdv1.IsotpMessage) error {
					if !slices.Contains(allowed, m.GetPayload()) {
						select {
						case bad <- m.GetPayload():
						default:
						}
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()

	f := s.faults
	for i := 0; ; i++ {
		select {
		case <-finished:
			close(errs)
			for err := range errs {
				t.Errorf("isotp(3E00): %v", err)
			}
			select {
			case p := <-bad:
				t.Errorf("isotp(3E00) answered %s, want one of %v", p, allowed)
			default:
			}
			return
		default:
		}
		switch i % 6 {
		case 0:
			f.SetIsotpLatency(time.Microsecond)
		case 1:
			if err := f.DisconnectConnector("c"); err != nil {
				t.Fatal(err)
			}
		case 2:
			if err := f.SetECUFault("", 0x7E0, ECUFault{BusyRepeat: 1}); err != nil {
				t.Fatal(err)
			}
		case 3:
			f.Hang(true)
		case 4:
			f.Hang(false)
			if err := f.ReconnectConnector("n"); err != nil {
				t.Fatal(err)
			}
		case 5:
			f.Clear()
		}
	}
}
