package partner_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/obdorch/obdorch/partner"
)

func TestDecodeTicket(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr string // "" for success
	}{
		{
			name: "full ticket, unknown fields tolerated",
			body: `{"id":"2f500382-0f8e-4298-83ee-e205a6a419df","ticket_number":17386048,"state":"in_progress",
				"created_at":"2019-08-24T14:15:22Z","updated_at":"2019-08-24T14:15:22.651+0000","assigned_at":null,
				"connection_id":"135b8fec-515a-4a7f-9df7-63497bacd2d6","vin":"WVWZZZ1KZAW000001","cancel_reason_id":null,
				"new_field_from_jifeline":{"nested":[1,2,3]}}`,
		},
		{
			name:    "unknown state",
			body:    `{"id":"x","state":"foo"}`,
			wantErr: `decode ticket: field "state": unknown ticket state "foo"`,
		},
		{
			name:    "state of the wrong type",
			body:    `{"id":"x","state":3}`,
			wantErr: `decode ticket: field "state": ticket state: want a string, got number`,
		},
		{
			name:    "number as string",
			body:    `{"id":"x","state":"pending","ticket_number":"17386048"}`,
			wantErr: `decode ticket: field "ticket_number": want an integer in range for int64, got string`,
		},
		{
			name:    "bad timestamp",
			body:    `{"id":"x","state":"pending","created_at":"yesterday"}`,
			wantErr: `decode ticket: field "created_at": invalid timestamp "yesterday": want RFC 3339 or 2006-01-02T15:04:05.000+0000`,
		},
		{
			name:    "nullable field of the wrong type",
			body:    `{"id":"x","state":"pending","vin":17}`,
			wantErr: `decode ticket: field "vin": want a string, got number`,
		},
		{
			name:    "nullable timestamp of the wrong type",
			body:    `{"id":"x","state":"pending","finished_at":true}`,
			wantErr: `decode ticket: field "finished_at": timestamp: want a string, got bool`,
		},
		{
			name:    "int32 overflow",
			body:    `{"id":"x","state":"pending","cancel_reason_id":4294967296}`,
			wantErr: `decode ticket: field "cancel_reason_id": want an integer in range for int32, got number 4294967296`,
		},
		{
			name:    "missing id",
			body:    `{"state":"pending"}`,
			wantErr: `decode ticket: field "id": missing required value`,
		},
		{
			name:    "not an object",
			body:    `["x"]`,
			wantErr: `decode ticket: want an object, got array`,
		},
		{
			name:    "malformed",
			body:    `{"id":"x",`,
			wantErr: `decode ticket: unexpected end of JSON input`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := partner.DecodeTicket([]byte(tt.body))
			if gotErr := errString(err); gotErr != tt.wantErr {
				t.Errorf("DecodeTicket(%s) = %q, want %q", tt.body, gotErr, tt.wantErr)
			}
			if err != nil {
				if _, ok := errors.AsType[*partner.DecodeError](err); !ok {
					t.Errorf("DecodeTicket(%s) = %T, want *DecodeError", tt.body, err)
				}
			}
		})
	}
}

func TestDecodeTicketPage(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantCount int
		wantTotal int64
		wantErr   string
	}{
		{
			name:      "page",
			body:      `{"query":{"limit":2,"offset":0},"result":[{"id":"a","state":"pending"},{"id":"b","state":"closed"}],"total":7}`,
			wantCount: 2,
			wantTotal: 7,
		},
		{
			name: "empty",
			body: `{"query":{},"result":[],"total":0}`,
		},
		{
			name:    "unknown state deep in the page",
			body:    `{"result":[{"id":"a","state":"pending"},{"id":"b","state":"foo"}],"total":2}`,
			wantErr: `decode ticket list: field "result[1].state": unknown ticket state "foo"`,
		},
		{
			name:    "missing id deep in the page",
			body:    `{"result":[{"id":"a","state":"pending"},{"state":"pending"}],"total":2}`,
			wantErr: `decode ticket list: field "result[1].id": missing required value`,
		},
		{
			name:    "result not a list",
			body:    `{"result":{"id":"a"},"total":1}`,
			wantErr: `decode ticket list: field "result": want an array, got object`,
		},
		{
			name:    "total not a number",
			body:    `{"result":[],"total":"many"}`,
			wantErr: `decode ticket list: field "total": want an integer in range for int64, got string`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, total, err := partner.DecodeTicketPage([]byte(tt.body))
			if gotErr := errString(err); gotErr != tt.wantErr {
				t.Fatalf("DecodeTicketPage(%s) = %q, want %q", tt.body, gotErr, tt.wantErr)
			}
			if err == nil && (len(got) != tt.wantCount || total != tt.wantTotal) {
				t.Errorf("DecodeTicketPage(%s) = %d tickets of %d, want %d of %d", tt.body, len(got), total, tt.wantCount, tt.wantTotal)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestClientRejectsBadAnswers checks that decoding errors reach the caller of the client intact.
func TestClientRejectsBadAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case partner.PathToken:
			w.Write([]byte(`{"access_token":"t","expires_in":3600,"token_type":"Bearer"}`))
		case partner.PathTickets:
			w.Write([]byte(`{"result":[{"id":"a","state":"pending","created_at":"2024-04-16:13:36.651+0000"}],"total":1}`))
		default:
			w.Write([]byte(`{"id":"a","state":"reopened"}`))
		}
	}))
	defer srv.Close()
	c, err := partner.NewClient(partner.Config{BaseURL: srv.URL, ClientID: "id", ClientSecret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Ticket(t.Context(), "a")
	if de, ok := errors.AsType[*partner.DecodeError](err); !ok || de.Field != "state" {
		t.Errorf("Ticket() = %v, want a *DecodeError for field state", err)
	}
	for _, err := range c.Tickets(t.Context(), partner.TicketFilter{}) {
		if de, ok := errors.AsType[*partner.DecodeError](err); !ok || de.Field != "result[0].created_at" {
			t.Errorf("Tickets() yielded %v, want a *DecodeError for field result[0].created_at", err)
		}
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2019-08-24T14:15:22Z", time.Date(2019, 8, 24, 14, 15, 22, 0, time.UTC)},
		{"2019-08-24T14:15:22.651Z", time.Date(2019, 8, 24, 14, 15, 22, 651e6, time.UTC)},
		{"2019-08-24T14:15:22.651+0000", time.Date(2019, 8, 24, 14, 15, 22, 651e6, time.UTC)},
		{"2019-08-24T16:15:22+02:00", time.Date(2019, 8, 24, 14, 15, 22, 0, time.UTC)},
		{"2019-08-24T16:15:22.5+0200", time.Date(2019, 8, 24, 14, 15, 22, 5e8, time.UTC)},
	}
	for _, tt := range tests {
		got, err := partner.ParseTime(tt.in)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseTime(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "yesterday", "2019-08-24", "2019-08-24 14:15:22Z", "2024-04-16:13:36.651+0000"} {
		if got, err := partner.ParseTime(in); err == nil {
			t.Errorf("ParseTime(%q) = %v, want an error", in, got)
		}
	}
}

func TestTimeJSON(t *testing.T) {
	var v struct {
		At  partner.Time  `json:"at"`
		Opt *partner.Time `json:"opt"`
	}
	if err := json.Unmarshal([]byte(`{"at":"2019-08-24T14:15:22.651+0000","opt":null}`), &v); err != nil {
		t.Fatalf("Unmarshal() = %v", err)
	}
	b, err := json.Marshal(v)
	if want := `{"at":"2019-08-24T14:15:22.651Z","opt":null}`; err != nil || string(b) != want {
		t.Errorf("Marshal() = %s, %v, want %s", b, err, want)
	}
}

func TestParseStates(t *testing.T) {
	for _, s := range []string{"prepared", "pending", "in_progress", "outsourced", "closed", "cancelled"} {
		if got, err := partner.ParseTicketState(s); err != nil || string(got) != s {
			t.Errorf("ParseTicketState(%q) = %q, %v, want %q", s, got, err, s)
		}
	}
	for _, s := range []string{"available", "active", "interrupted", "finished", "failed"} {
		if got, err := partner.ParseSessionState(s); err != nil || string(got) != s {
			t.Errorf("ParseSessionState(%q) = %q, %v, want %q", s, got, err, s)
		}
	}
	if _, err := partner.ParseTicketState("Pending"); err == nil || !strings.Contains(err.Error(), `"Pending"`) {
		t.Errorf("ParseTicketState(%q) = %v, want an error naming the value", "Pending", err)
	}
	if _, err := partner.ParseSessionState("open"); err == nil || !strings.Contains(err.Error(), `"open"`) {
		t.Errorf("ParseSessionState(%q) = %v, want an error naming the value", "open", err)
	}
}

func TestConnectorFree(t *testing.T) {
	id := "x"
	tests := []struct {
		name string
		c    partner.Connector
		want bool
	}{
		{"idle", partner.Connector{}, true},
		{"in a connection", partner.Connector{ConnectionID: &id}, false},
		{"with a ticket", partner.Connector{ActiveTicketID: &id}, false},
		{"both", partner.Connector{ConnectionID: &id, ActiveTicketID: &id}, false},
	}
	for _, tt := range tests {
		if got := tt.c.Free(); got != tt.want {
			t.Errorf("%s: Free() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{"99999999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := partner.ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
