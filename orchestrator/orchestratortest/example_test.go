package orchestratortest_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/obdorch/obdorch/orchestrator/orchestratortest"
	"github.com/obdorch/obdorch/sdk"
	"github.com/obdorch/obdorch/sdk/uds"
)

// demoKey is the key function of the fake's simulated ECUs (documented in
// package connector/fake as DemoSecurityKey): the 4-byte seed rotated left by
// 3 bits, XOR 0x4F42444F. A real runner gets its key functions from the
// vehicle maker.
func demoKey(_ byte, seed []byte) ([]byte, error) {
	if len(seed) != 4 {
		return nil, fmt.Errorf("seed of %d bytes, want 4", len(seed))
	}
	k := bits.RotateLeft32(binary.BigEndian.Uint32(seed), 3) ^ 0x4F42444F
	return binary.BigEndian.AppendUint32(nil, k), nil
}

// withSession runs f on a session acquired from an in-process orchestrator
// with one demo ticket, then finishes the session.
func withSession(f func(ctx context.Context, s *sdk.Session) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env, err := orchestratortest.New(ctx, orchestratortest.Options{Tickets: 1})
	if err != nil {
		return err
	}
	defer env.Close()
	c, err := sdk.Dial(env.Addr, sdk.WithInsecure(), sdk.WithRunnerName("example"))
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.Acquire(ctx, sdk.AcquireOptions{})
	if err != nil {
		return err
	}
	if err := f(ctx, s); err != nil {
		_ = s.Release(ctx)
		return err
	}
	_, err = s.Finish(ctx, sdk.Result{Codes: []sdk.ResultCode{sdk.ResultSuccess}, Description: "example"})
	return err
}

// A runner reads the VIN and the confirmed DTCs of every ECU of the vehicle
// and finishes the session.
func Example() {
	err := withSession(func(ctx context.Context, s *sdk.Session) error {
		fmt.Println("session on a vehicle with VIN", s.Info().GetVin())
		ecus := []struct {
			name string
			spec sdk.ChannelSpec
		}{
			{"engine", sdk.ChannelSpec{RequestID: 0x7E0, ResponseID: 0x7E8}},
			{"transmission", sdk.ChannelSpec{RequestID: 0x7E1, ResponseID: 0x7E9}},
			{"body", sdk.ChannelSpec{RequestID: 0x7E2, ResponseID: 0x7EA}},
		}
		for _, e := range ecus {
			ch, err := s.Channel(ctx, e.spec)
			if err != nil {
				return err
			}
			vin, err := ch.ReadVIN(ctx)
			if err != nil {
				return err
			}
			report, err := ch.ReadDTCsByStatus(ctx, uds.ConfirmedDTC)
			if err != nil {
				return err
			}
			fmt.Printf("%s: VIN %s, %d confirmed DTCs\n", e.name, vin, len(report.DTCs))
			for _, d := range report.DTCs {
				fmt.Println("  ", d)
			}
		}
		return nil
	})
	if err != nil {
		fmt.Println("error:", err)
	}
	// Output:
	// session on a vehicle with VIN JTDTSEN21X8336878
	// engine: VIN JTDTSEN21X8336878, 2 confirmed DTCs
	//    P0301 status 0x2F testFailed|testFailedThisOperationCycle|pendingDTC|confirmedDTC|testFailedSinceLastClear
	//    P0420 status 0x08 confirmedDTC
	// transmission: VIN JTDTSEN21X8336878, 1 confirmed DTCs
	//    P0700 status 0x09 testFailed|confirmedDTC
	// body: VIN JTDTSEN21X8336878, 1 confirmed DTCs
	//    B1234 status 0x28 confirmedDTC|testFailedSinceLastClear
}

// Security access with the caller's key function unlocks a protected write;
// without it the ECU answers securityAccessDenied.
func ExampleChannel_SecurityAccess() {
	err := withSession(func(ctx context.Context, s *sdk.Session) error {
		engine, err := s.Channel(ctx, sdk.ChannelSpec{RequestID: 0x7E0, ResponseID: 0x7E8})
		if err != nil {
			return err
		}
		if _, err := engine.DiagnosticSessionControl(ctx, uds.ExtendedSession); err != nil {
			return err
		}
		err = engine.WriteDataByIdentifier(ctx, uds.DIDRepairShopCode, []byte("WS-0000042"))
		fmt.Println("locked:", err)
		if err := engine.SecurityAccess(ctx, 0x01, demoKey); err != nil {
			return err
		}
		err = engine.WriteDataByIdentifier(ctx, uds.DIDRepairShopCode, []byte("WS-0000042"))
		fmt.Println("unlocked:", err)
		code, err := engine.ReadDID(ctx, uds.DIDRepairShopCode)
		fmt.Printf("repair shop code %q, %v\n", code, err)
		return nil
	})
	if err != nil {
		fmt.Println("error:", err)
	}
	// Output:
	// locked: uds: WriteDataByIdentifier (0x2E): securityAccessDenied (0x33)
	// unlocked: <nil>
	// repair shop code "WS-0000042", <nil>
}

// A negative response is a typed error: its NRC can be tested with
// errors.Is and read with errors.As.
func ExampleChannel_Request() {
	err := withSession(func(ctx context.Context, s *sdk.Session) error {
		engine, err := s.Channel(ctx, sdk.ChannelSpec{RequestID: 0x7E0, ResponseID: 0x7E8})
		if err != nil {
			return err
		}
		resp, err := engine.Request(ctx, []byte{0x22, 0xF1, 0x86}) // active session
		fmt.Printf("% X, %v\n", resp.Payload, err)
		_, err = engine.Request(ctx, []byte{0x2E, 0x01, 0x01, 0, 0, 0, 2}) // write coding in the default session
		var nrc *uds.NegativeResponseError
		if errors.As(err, &nrc) {
			fmt.Println(nrc.NRC, errors.Is(err, &uds.NegativeResponseError{NRC: uds.ServiceNotSupportedInActiveSession}))
		}
		return nil
	})
	if err != nil {
		fmt.Println("error:", err)
	}
	// Output:
	// 62 F1 86 01, <nil>
	// serviceNotSupportedInActiveSession true
}

// Routines with responsePending answers, results and stop; the self test
// needs the extended session and security access.
func ExampleChannel_RoutineControl() {
	err := withSession(func(ctx context.Context, s *sdk.Session) error {
		engine, err := s.Channel(ctx, sdk.ChannelSpec{RequestID: 0x7E0, ResponseID: 0x7E8})
		if err != nil {
			return err
		}
		r, err := engine.RoutineControl(ctx, uds.StartRoutine, 0xFF00, nil) // erase: answers 0x78 three times first
		fmt.Printf("erase: % X %v\n", r.Status, err)
		const selfTest = 0x0203
		_, err = engine.RoutineControl(ctx, uds.StartRoutine, selfTest, nil)
		fmt.Println("default session:", err)
		if _, err := engine.DiagnosticSessionControl(ctx, uds.ExtendedSession); err != nil {
			return err
		}
		if err := engine.SecurityAccess(ctx, 0x01, demoKey); err != nil {
			return err
		}
		_, err = engine.RoutineControl(ctx, uds.RequestRoutineResults, selfTest, nil)
		fmt.Println("results before start:", err)
		if _, err := engine.RoutineControl(ctx, uds.StartRoutine, selfTest, nil); err != nil {
			return err
		}
		r, err = engine.RoutineControl(ctx, uds.RequestRoutineResults, selfTest, nil)
		fmt.Printf("results: % X %v\n", r.Status, err)
		return nil
	})
	if err != nil {
		fmt.Println("error:", err)
	}
	// Output:
	// erase: 00 <nil>
	// default session: uds: RoutineControl (0x31): requestOutOfRange (0x31)
	// results before start: uds: RoutineControl (0x31): requestSequenceError (0x24)
	// results: 00 00 <nil>
}
