package partnertest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/obdorch/obdorch/partner"
	"github.com/obdorch/obdorch/partner/partnertest"
)

// A fake served on a listener of its own, steered over HTTP as a harness in another process
// would. A binary would serve it with http.Server{Addr: "127.0.0.1:8081", Handler: fake.Handler()}.
func Example() {
	fake := partnertest.New(partnertest.Options{})
	fake.Seed(2, 1)
	srv := httptest.NewServer(fake.Handler())
	defer srv.Close()

	steer, err := http.Post(srv.URL+"/_fake/faults", "application/json",
		strings.NewReader(`{"rate_limited": 1, "retry_after": "2s", "path_prefix": "/v2/"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	steer.Body.Close()
	fmt.Println("steer:", steer.Status)

	resp, err := http.Get(srv.URL + partner.PathTickets)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println("tickets:", resp.Status, "Retry-After", resp.Header.Get("Retry-After"))
	fmt.Println("requests:", fake.Requests()[partner.PathTickets])
	// Output:
	// steer: 200 OK
	// tickets: 429 Too Many Requests Retry-After 2
	// requests: 1
}
