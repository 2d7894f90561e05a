package partner

import (
	"context"
	"time"
)

// SetClock replaces the clock of c: now drives token refresh and the retry budget, sleep the
// waits between attempts.
func SetClock(c *Client, now func() time.Time, sleep func(context.Context, time.Duration) error) {
	c.now, c.sleep = now, sleep
}

// DecodeTicket decodes a ticket answer as Client.Ticket does.
func DecodeTicket(b []byte) (Ticket, error) {
	var t Ticket
	err := decodeRecord("ticket", b, &t)
	return t, err
}

// DecodeTicketPage decodes a ticket list answer as Client.Tickets does.
func DecodeTicketPage(b []byte) ([]Ticket, int64, error) {
	var p page[Ticket]
	err := decodePage("ticket list", b, &p)
	return p.Result, p.Total, err
}

var ParseRetryAfter = parseRetryAfter

var Sleep = sleep

// DecodeConnectorPage decodes a connector list answer as Client.Connectors does.
func DecodeConnectorPage(b []byte) ([]Connector, int64, error) {
	var p page[Connector]
	err := decodePage("connector list", b, &p)
	return p.Result, p.Total, err
}
