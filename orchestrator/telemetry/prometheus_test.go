package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
)

// TestPrometheusScrape proves that with a registry every metric recorded on
// the global meter provider can be scraped, together with the Go runtime's
// metrics, build_info and the resource's service.version, while no OTLP or
// console exporter is configured.
func TestPrometheusScrape(t *testing.T) {
	resetGlobals(t)
	ctx := testContext(t)
	reg := prometheus.NewRegistry()
	shutdown, err := Setup(ctx, Config{
		ServiceName: "obdorch-test", ServiceVersion: "v9.9.9",
		Getenv:     func(string) string { return "" },
		Prometheus: reg,
		BuildInfo:  map[string]string{"version": "v9.9.9", "revision": "abc123", "go_version": "go1.27.3"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := shutdown(context.WithoutCancel(ctx)); err != nil {
			t.Error(err)
		}
	}()
	counter, err := otel.Meter("test").Int64Counter("obdorch.test.things")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(ctx, 3)

	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	text := string(body)
	for _, want := range []string{
		"obdorch_test_things_total",
		`build_info{go_version="go1.27.3"`,
		`revision="abc123",version="v9.9.9"} 1`,
		"go_goroutine_count",
		`service_version="v9.9.9"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q; got:\n%s", want, text)
		}
	}
}
