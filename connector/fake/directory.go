package fake

import "sync"

// Target is what a ticket or a connector resolves to: the ticket (empty for
// a connector without one), the connector it is linked to and the vehicle
// behind that connector.
type Target struct {
	TicketID      string // ticket UUID
	TicketNumber  string // human-readable ticket number, e.g. "7848095"
	ConnectorID   string // connector UUID
	ConnectorName string // connector number or name
	VIN           string // VIN of the vehicle; DefaultVIN when empty
}

// Directory resolves tickets and connectors for the fake. The fake Partner
// API satisfies it through the adapter in package fakejifeline; tests can use
// a StaticDirectory. Implementations must be safe for concurrent use.
type Directory interface {
	// LookupTicket resolves a ticket number or ticket UUID. It reports false
	// for tickets on which no session may be started.
	LookupTicket(numberOrID string) (Target, bool)
	// LookupConnector resolves a connector UUID or name. The ticket fields of
	// the result are ignored.
	LookupConnector(idOrName string) (Target, bool)
}

// StaticDirectory is a Directory over a fixed, growable list of targets.
type StaticDirectory struct {
	mu      sync.RWMutex
	targets []Target
}

// NewStaticDirectory returns a directory holding targets.
func NewStaticDirectory(targets ...Target) *StaticDirectory {
	d := &StaticDirectory{}
	for _, t := range targets {
		d.Add(t)
	}
	return d
}

// Add appends a target. It is safe to call while the fake serves.
func (d *StaticDirectory) Add(t Target) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.targets = append(d.targets, t)
}

// LookupTicket implements Directory.
func (d *StaticDirectory) LookupTicket(numberOrID string) (Target, bool) {
	if numberOrID == "" {
		return Target{}, false
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, t := range d.targets {
		if t.TicketID == numberOrID || t.TicketNumber == numberOrID {
			return t, true
		}
	}
	return Target{}, false
}

// LookupConnector implements Directory.
func (d *StaticDirectory) LookupConnector(idOrName string) (Target, bool) {
	if idOrName == "" {
		return Target{}, false
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, t := range d.targets {
		if t.ConnectorID == idOrName || t.ConnectorName == idOrName {
			return Target{ConnectorID: t.ConnectorID, ConnectorName: t.ConnectorName, VIN: t.VIN}, true
		}
	}
	return Target{}, false
}
