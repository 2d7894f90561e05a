package partner_test

import (
	"testing"

	"github.com/obdorch/obdorch/partner"
)

// FuzzDecodeTicketPage feeds arbitrary bodies to the ticket list decoder: it must never panic,
// and whatever it accepts must be usable.
func FuzzDecodeTicketPage(f *testing.F) {
	for _, seed := range []string{
		`{"query":{"limit":2,"offset":0},"result":[{"id":"a","ticket_number":7848095,"state":"pending","created_at":"2019-08-24T14:15:22Z","assigned_at":null}],"total":1}`,
		`{"result":[{"id":"a","state":"closed","finished_at":"2019-08-24T14:15:22.651+0000","cancel_reason_id":3,"vin":"WVWZZZ1KZAW000001"}],"total":9}`,
		`{"result":[{"id":"a","state":"foo"}],"total":1}`,
		`{"result":[{"id":"a","state":"pending","created_at":"2019-13-45T99:99:99+0000"}]}`,
		`{"result":[{"state":"pending"}],"total":"1"}`,
		`{"result":{"id":"a"}}`,
		`{"result":[null,{"id":"\u0041","state":"p\u0065nding"}],"total":2}`,
		`{"result":[{"id":"a","state":"pending","cancel_reason_id":1e3}]}`,
		`[]`, `null`, `{`, ``, `{"result":[{"id":"a","state":"pending","customer_id":{}}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tickets, _, err := partner.DecodeTicketPage(body)
		if err != nil {
			if err.Error() == "" {
				t.Errorf("DecodeTicketPage(%q) returned an empty error", body)
			}
			return
		}
		for i, tk := range tickets {
			if tk.ID == "" {
				t.Errorf("DecodeTicketPage(%q) accepted ticket %d without id", body, i)
			}
			if _, err := partner.ParseTicketState(string(tk.State)); err != nil {
				t.Errorf("DecodeTicketPage(%q) accepted ticket %d with state %q", body, i, tk.State)
			}
		}
	})
}
