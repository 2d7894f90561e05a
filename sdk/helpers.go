package sdk

import (
	"context"
	"errors"
	"fmt"

	"github.com/obdorch/obdorch/sdk/uds"
)

// The UDS helpers below send one request each on the channel and decode the
// answer. A negative answer is a *uds.NegativeResponseError naming the NRC
// (errors.Is(err, &uds.NegativeResponseError{NRC: uds.SecurityAccessDenied})
// matches it); an answer that does not decode is a *uds.FormatError.

// DiagnosticSessionControl (0x10) switches the ECU to session s and returns
// the timing the ECU reports. While the session is not the default one the
// orchestrator keeps it alive with tester present.
func (ch *Channel) DiagnosticSessionControl(ctx context.Context, s uds.DiagnosticSession) (uds.SessionTiming, error) {
	resp, err := ch.Request(ctx, uds.SessionRequest(s))
	if err != nil {
		return uds.SessionTiming{}, err
	}
	return uds.ParseSession(s, resp.Payload)
}

// ECUReset (0x11) resets the ECU, which returns it to the default session.
func (ch *Channel) ECUReset(ctx context.Context, t uds.ResetType) error {
	resp, err := ch.Request(ctx, uds.ResetRequest(t))
	if err != nil {
		return err
	}
	return uds.ParseReset(t, resp.Payload)
}

// ReadDataByIdentifier (0x22) reads one or several DIDs in one request and
// returns their records in the order asked. Every DID but the last needs
// its Size for the answer to be split.
func (ch *Channel) ReadDataByIdentifier(ctx context.Context, dids ...uds.DID) ([]uds.DataRecord, error) {
	if len(dids) == 0 {
		return nil, errors.New("sdk: ReadDataByIdentifier needs at least one DID")
	}
	for _, d := range dids[:len(dids)-1] {
		if d.Size <= 0 {
			return nil, fmt.Errorf("sdk: ReadDataByIdentifier: DID 0x%04X needs its Size (only the last DID may leave it 0)", d.ID)
		}
	}
	resp, err := ch.Request(ctx, uds.ReadDataRequest(dids...))
	if err != nil {
		return nil, err
	}
	return uds.ParseReadData(dids, resp.Payload)
}

// ReadDID reads one DID (0x22) and returns its record.
func (ch *Channel) ReadDID(ctx context.Context, id uint16) ([]byte, error) {
	recs, err := ch.ReadDataByIdentifier(ctx, uds.DID{ID: id})
	if err != nil {
		return nil, err
	}
	return recs[0].Data, nil
}

// ReadVIN reads the vehicle identification number (22 F1 90).
func (ch *Channel) ReadVIN(ctx context.Context) (string, error) {
	vin, err := ch.ReadDID(ctx, uds.DIDVIN)
	return string(vin), err
}

// WriteDataByIdentifier (0x2E) writes data to DID id.
func (ch *Channel) WriteDataByIdentifier(ctx context.Context, id uint16, data []byte) error {
	resp, err := ch.Request(ctx, uds.WriteDataRequest(id, data))
	if err != nil {
		return err
	}
	return uds.ParseWriteData(id, resp.Payload)
}

// ReadDTCCount (0x19 01) counts the DTCs whose status matches mask.
func (ch *Channel) ReadDTCCount(ctx context.Context, mask uds.Status) (uds.DTCCount, error) {
	resp, err := ch.Request(ctx, uds.DTCCountRequest(mask))
	if err != nil {
		return uds.DTCCount{}, err
	}
	return uds.ParseDTCCount(resp.Payload)
}

// ReadDTCsByStatus (0x19 02) lists the DTCs whose status matches mask, each
// with its status byte.
func (ch *Channel) ReadDTCsByStatus(ctx context.Context, mask uds.Status) (uds.DTCReport, error) {
	resp, err := ch.Request(ctx, uds.DTCsByStatusRequest(mask))
	if err != nil {
		return uds.DTCReport{}, err
	}
	return uds.ParseDTCReport(uds.ReportDTCByStatusMask, resp.Payload)
}

// ReadSupportedDTCs (0x19 0A) lists every DTC the ECU supports, stored or
// not, with its status.
func (ch *Channel) ReadSupportedDTCs(ctx context.Context) (uds.DTCReport, error) {
	resp, err := ch.Request(ctx, uds.SupportedDTCsRequest())
	if err != nil {
		return uds.DTCReport{}, err
	}
	return uds.ParseDTCReport(uds.ReportSupportedDTC, resp.Payload)
}

// ClearDiagnosticInformation (0x14) clears a group of DTCs (uds.AllDTCs for
// all) or one DTC.
func (ch *Channel) ClearDiagnosticInformation(ctx context.Context, group uint32) error {
	resp, err := ch.Request(ctx, uds.ClearRequest(group))
	if err != nil {
		return err
	}
	return uds.ParseClear(resp.Payload)
}

// RoutineControl (0x31) starts, stops or asks for the results of routine
// id, with an optional option record. The orchestrator waits through the
// ECU's responsePending answers.
func (ch *Channel) RoutineControl(ctx context.Context, t uds.RoutineControlType, id uint16, option []byte) (uds.RoutineResult, error) {
	resp, err := ch.Request(ctx, uds.RoutineRequest(t, id, option))
	if err != nil {
		return uds.RoutineResult{}, err
	}
	return uds.ParseRoutine(t, id, resp.Payload)
}

// KeyFunc computes the key for a security access seed at level (the odd
// requestSeed sub-function). Key functions are the vehicle maker's; the
// runner supplies them.
type KeyFunc func(level byte, seed []byte) ([]byte, error)

// SecurityAccess (0x27) unlocks security level (odd: 0x01, 0x03...): it
// requests a seed, computes the key with key and sends it. An all-zero
// seed means the level is unlocked already; no key is sent then. A wrong key
// is a negative response (invalidKey, exceedNumberOfAttempts...).
func (ch *Channel) SecurityAccess(ctx context.Context, level byte, key KeyFunc) error {
	if level%2 == 0 || level > 0x7D {
		return fmt.Errorf("sdk: SecurityAccess level 0x%02X: want an odd requestSeed level from 0x01 to 0x7D", level)
	}
	if key == nil {
		return errors.New("sdk: SecurityAccess needs a key function")
	}
	resp, err := ch.Request(ctx, uds.SeedRequest(level))
	if err != nil {
		return err
	}
	seed, err := uds.ParseSeed(level, resp.Payload)
	if err != nil {
		return err
	}
	if allZero(seed) {
		return nil
	}
	k, err := key(level, seed)
	if err != nil {
		return fmt.Errorf("sdk: SecurityAccess: key function: %w", err)
	}
	resp, err = ch.Request(ctx, uds.KeyRequest(level, k))
	if err != nil {
		return err
	}
	return uds.ParseKey(level, resp.Payload)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// InputOutputControl (0x2F) controls the output behind DID id with
// parameter p (and a control state for ShortTermAdjustment) and returns the
// control status record the ECU answers with.
func (ch *Channel) InputOutputControl(ctx context.Context, id uint16, p uds.IOControlParameter, state []byte) ([]byte, error) {
	resp, err := ch.Request(ctx, uds.IOControlRequest(id, p, state))
	if err != nil {
		return nil, err
	}
	return uds.ParseIOControl(id, p, resp.Payload)
}

// TesterPresent (3E 00) checks that the ECU answers.
func (ch *Channel) TesterPresent(ctx context.Context) error {
	resp, err := ch.Request(ctx, []byte{byte(uds.TesterPresent), 0x00})
	if err != nil {
		return err
	}
	return uds.Positive(uds.TesterPresent, resp.Payload)
}
