package partner

import (
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Nullable fields are pointers throughout this package: nil means the Partner API sent null (or
// left the field out), which is different from an empty string or zero for fields such as
// connection_id or finished_at. Fields the API never sends as null are plain values; a null
// there decodes as the zero value.

// TicketState is the state of a Jifeline ticket.
type TicketState string

// The ticket states of the Partner API.
const (
	TicketPrepared   TicketState = "prepared"
	TicketPending    TicketState = "pending"
	TicketInProgress TicketState = "in_progress"
	TicketOutsourced TicketState = "outsourced"
	TicketClosed     TicketState = "closed"
	TicketCancelled  TicketState = "cancelled"
)

var ticketStates = []TicketState{TicketPrepared, TicketPending, TicketInProgress, TicketOutsourced, TicketClosed, TicketCancelled}

// ParseTicketState returns the TicketState named s, or an error naming s if it is not one of the
// states of the Partner API.
func ParseTicketState(s string) (TicketState, error) {
	if st := TicketState(s); slices.Contains(ticketStates, st) {
		return st, nil
	}
	return "", fmt.Errorf("unknown ticket state %q", s)
}

// Open reports whether a ticket in state s can still be worked on (it is neither closed nor
// cancelled).
func (s TicketState) Open() bool {
	return s != TicketClosed && s != TicketCancelled
}

// UnmarshalJSON accepts only the known ticket states.
func (s *TicketState) UnmarshalJSON(b []byte) error {
	return unmarshalEnum(b, "ticket state", s, ticketStates, ParseTicketState)
}

// unmarshalEnum decodes the JSON string b into *v, one of known, or returns parse's error. A
// plain string is compared in place: converting it would allocate for every record of a page.
func unmarshalEnum[T ~string](b []byte, what string, v *T, known []T, parse func(string) (T, error)) error {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		for _, k := range known {
			if string(b[1:len(b)-1]) == string(k) {
				*v = k
				return nil
			}
		}
	}
	str, err := jsonString(b)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	st, err := parse(str)
	if err != nil {
		return err
	}
	*v = st
	return nil
}

// SessionState is the state of an openOBD session.
type SessionState string

// The openOBD session states.
const (
	SessionAvailable   SessionState = "available"
	SessionActive      SessionState = "active"
	SessionInterrupted SessionState = "interrupted"
	SessionFinished    SessionState = "finished"
	SessionFailed      SessionState = "failed"
)

var sessionStates = []SessionState{SessionAvailable, SessionActive, SessionInterrupted, SessionFinished, SessionFailed}

// ParseSessionState returns the SessionState named s, or an error naming s if it is not one of
// the openOBD session states.
func ParseSessionState(s string) (SessionState, error) {
	if st := SessionState(s); slices.Contains(sessionStates, st) {
		return st, nil
	}
	return "", fmt.Errorf("unknown session state %q", s)
}

// Live reports whether a session in state s can still be used or interrupted (available or
// active).
func (s SessionState) Live() bool {
	return s == SessionAvailable || s == SessionActive
}

// UnmarshalJSON accepts only the known session states.
func (s *SessionState) UnmarshalJSON(b []byte) error {
	return unmarshalEnum(b, "session state", s, sessionStates, ParseSessionState)
}

// Time is a timestamp of the Partner API. Jifeline writes both RFC 3339
// ("2019-08-24T14:15:22Z") and a variant without a colon in the offset
// ("2019-08-24T14:15:22.651+0000"); Time reads both and writes RFC 3339.
type Time struct {
	time.Time
}

// The layouts ParseTime accepts. Fractional seconds are optional in both.
const (
	layoutRFC3339   = time.RFC3339Nano
	layoutNoColonTZ = "2006-01-02T15:04:05Z0700"
)

// ParseTime parses a Partner API timestamp in either of the formats Jifeline uses.
func ParseTime(s string) (Time, error) {
	t, err := time.Parse(layoutRFC3339, s)
	if err != nil {
		var err2 error
		if t, err2 = time.Parse(layoutNoColonTZ, s); err2 != nil {
			return Time{}, fmt.Errorf("invalid timestamp %q: want RFC 3339 or 2006-01-02T15:04:05.000+0000", s)
		}
	}
	return Time{t}, nil
}

// UnmarshalJSON reads a timestamp string; null leaves t unchanged.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s, err := jsonString(b)
	if err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	pt, err := ParseTime(s)
	if err != nil {
		return err
	}
	*t = pt
	return nil
}

// MarshalJSON writes t in RFC 3339 with the precision it has.
func (t Time) MarshalJSON() ([]byte, error) {
	return t.Time.MarshalJSON()
}

// Ticket is a Jifeline ticket: a request to perform a remote service on a customer's vehicle.
type Ticket struct {
	ID                  string      `json:"id"`
	TicketNumber        int64       `json:"ticket_number"`
	State               TicketState `json:"state"`
	CreatedAt           Time        `json:"created_at"`
	UpdatedAt           Time        `json:"updated_at"`
	AssignedAt          *Time       `json:"assigned_at"`
	FinishedAt          *Time       `json:"finished_at"`
	CancelReasonID      *int32      `json:"cancel_reason_id"`
	ConnectionID        *string     `json:"connection_id"`
	CustomerID          *string     `json:"customer_id"`
	CustomerConnectorID *string     `json:"customer_connector_id"`
	CustomerChannelID   *string     `json:"customer_channel_id"`
	OperatorChannelID   *string     `json:"operator_channel_id"`
	OperatorID          *string     `json:"operator_id"`
	CustomerReference   string      `json:"customer_reference"`
	OperatorReference   string      `json:"operator_reference"`
	// ExternalReference and ExternallyProcessed belong to external systems such as this one;
	// Jifeline never changes them. See Client.UpdateTicket.
	ExternalReference   string  `json:"external_reference"`
	ExternallyProcessed bool    `json:"externally_processed"`
	FirstLocalAddedAt   *Time   `json:"first_local_added_at"`
	Outsourced          bool    `json:"outsourced"`
	SourceProviderID    *string `json:"source_provider_id"`
	VehicleModelID      int64   `json:"vehicle_model_id"`
	VIN                 *string `json:"vin"`
	VoucherCode         *string `json:"voucher_code"`

	// Sent for closed and cancelled tickets only ("12v" or "24v").
	VehicleBatteryVoltage string `json:"vehicle_battery_voltage,omitempty"`
	// Sent for outsourced tickets only.
	OutsourceProviderID *string `json:"outsource_provider_id,omitempty"`
	OutsourceTicketID   *string `json:"outsource_ticket_id,omitempty"`
	Reclaimable         bool    `json:"reclaimable,omitempty"`
}

// Connector is a customer's vehicle communication interface (a J-ReX). Its shape follows
// Jifeline's Customer API, as the Partner API's connector object is not documented publicly.
//
// Two shapes of identity are accepted, since which one the Partner API sends is not known:
// {"id": "<uuid>"} and the Customer API's {"id": 123, "uuid": "<uuid>"}. Either way ID is the
// UUID, the connector's one identity here; Number keeps the integer id of the second shape.
type Connector struct {
	// ID is the connector's UUID.
	ID string `json:"id"`
	// Number is the integer id when the Partner API sends one (then HasNumber is set). Neither
	// is part of Connector's JSON encoding, which is the UUID shape.
	Number     int64   `json:"-"`
	HasNumber  bool    `json:"-"`
	CustomerID *string `json:"customer_id"`
	// Name is the connector's serial number, e.g. "23568".
	Name            string  `json:"name"`
	ConnectionID    *string `json:"connection_id"`
	ActiveTicketID  *string `json:"active_ticket_id"`
	IsOnline        bool    `json:"is_online"`
	VINNumber       *string `json:"vin_number"`
	SoftwareVersion string  `json:"software_version,omitempty"`
	HardwareVersion string  `json:"hardware_version,omitempty"`
	HardwareType    string  `json:"hardware_type,omitempty"`
	SupportsDoIP    bool    `json:"supports_doip,omitempty"`
}

// Free reports whether an openOBD session may be started on the connector itself: it is not in a
// connection and has no active ticket. Whether it is online is a separate matter (IsOnline).
func (c Connector) Free() bool {
	return c.ConnectionID == nil && c.ActiveTicketID == nil
}

// Session is an openOBD session as the Partner API lists it; the same five fields as the gRPC
// SessionInfo.
type Session struct {
	ID           string       `json:"id"`
	State        SessionState `json:"state"`
	CreatedAt    Time         `json:"created_at"`
	GRPCEndpoint string       `json:"grpc_endpoint"`
	// AuthenticationToken is a one-time credential for the session; it is never logged.
	AuthenticationToken string `json:"authentication_token"`
}

// LogValue leaves the authentication token out of log records.
func (s Session) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", s.ID),
		slog.String("state", string(s.State)),
		slog.String("grpc_endpoint", s.GRPCEndpoint),
	)
}
