package partner_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/obdorch/obdorch/partner"
	"github.com/obdorch/obdorch/partner/partnertest"
)

const connectorUUID = "c571e33b-6b12-455a-8388-0c025295564a"

func TestDecodeConnectorShapes(t *testing.T) {
	tests := []struct {
		name string
		json string
		want partner.Connector
	}{
		{
			"uuid id",
			`{"result":[{"id":"` + connectorUUID + `","name":"23568","is_online":true}],"total":1}`,
			partner.Connector{ID: connectorUUID, Name: "23568", IsOnline: true},
		},
		{
			"integer id with uuid (Customer API)",
			`{"result":[{"id":23568,"uuid":"` + connectorUUID + `","name":"23568","is_online":true}],"total":1}`,
			partner.Connector{ID: connectorUUID, Number: 23568, HasNumber: true, Name: "23568", IsOnline: true},
		},
		{
			"uuid id and uuid field",
			`{"result":[{"id":"` + connectorUUID + `","uuid":"` + connectorUUID + `"}],"total":1}`,
			partner.Connector{ID: connectorUUID},
		},
		{
			"uuid field only",
			`{"result":[{"uuid":"` + connectorUUID + `"}],"total":1}`,
			partner.Connector{ID: connectorUUID},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, total, err := partner.DecodeConnectorPage([]byte(tt.json))
			if err != nil || total != 1 || len(got) != 1 {
				t.Fatalf("DecodeConnectorPage() = %v, %d, %v; want one connector", got, total, err)
			}
			if diff := cmp.Diff(tt.want, got[0]); diff != "" {
				t.Errorf("DecodeConnectorPage() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeConnectorErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, json, field, text string
	}{
		{"integer id without uuid", `{"result":[{"id":23568}]}`, "result[0].uuid", "missing"},
		{"boolean id", `{"result":[{"id":true}]}`, "result[0].id", "want a string UUID or an integer, got bool"},
		{"fractional id", `{"result":[{"id":1.5,"uuid":"x"}]}`, "result[0].id", "got number"},
		{"no id at all", `{"result":[{"name":"1"}]}`, "result[0].id", "missing"},
		{"wrong type elsewhere", `{"result":[{"id":"x","is_online":"yes"}]}`, "result[0].is_online", "want a boolean"},
		{"uuid not a string", `{"result":[{"id":7,"uuid":7}]}`, "result[0].uuid", "want a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := partner.DecodeConnectorPage([]byte(tt.json))
			de, ok := errors.AsType[*partner.DecodeError](err)
			if !ok || de.Field != tt.field || !strings.Contains(de.Error(), tt.text) {
				t.Errorf("DecodeConnectorPage(%s) = %v, want a DecodeError at %q saying %q", tt.json, err, tt.field, tt.text)
			}
		})
	}
}

// The client reads the fake's connectors the same in both shapes: the UUID is the identity,
// the integer id is kept as Number.
func TestConnectorsInBothShapes(t *testing.T) {
	for _, shape := range []partnertest.ConnectorShape{partnertest.ConnectorShapeUUID, partnertest.ConnectorShapeInteger} {
		t.Run(string(shape), func(t *testing.T) {
			srv := partnertest.NewServer(t, partnertest.Options{ConnectorShape: shape})
			tickets := srv.Seed(3, 1)
			c, _ := newClient(t, srv, nil)
			want := srv.Connectors()
			var got []partner.Connector
			for conn, err := range c.Connectors(t.Context(), partner.Paging{PageSize: 2}) {
				if err != nil {
					t.Fatalf("Connectors() yielded %v", err)
				}
				got = append(got, conn)
			}
			if shape == partnertest.ConnectorShapeUUID {
				for i := range want { // this shape does not carry the integer id
					want[i].Number, want[i].HasNumber = 0, false
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Connectors() mismatch (-want +got):\n%s", diff)
			}
			id := *tickets[0].CustomerConnectorID
			one, err := c.Connector(t.Context(), id)
			if err != nil || one.ID != id || one.HasNumber != (shape == partnertest.ConnectorShapeInteger) {
				t.Errorf("Connector(%s) = %+v, %v; want that connector", id, one, err)
			}
		})
	}
}
