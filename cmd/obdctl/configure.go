package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"

	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

// busFlags collects repeated --bus definitions.
type busFlags []*orchestratorv1.Bus

func (b *busFlags) String() string { return fmt.Sprint(len(*b)) }

// Set parses NAME=can,BITRATE[,PLUS/MINUS][,frames][,low-speed] or
// NAME=kline,BAUD[,PIN][,fast].
func (b *busFlags) Set(v string) error {
	name, def, ok := strings.Cut(v, "=")
	parts := strings.Split(def, ",")
	if !ok || name == "" || len(parts) < 2 {
		return fmt.Errorf("want NAME=can,BITRATE[,PLUS/MINUS][,frames][,low-speed] or NAME=kline,BAUD[,PIN][,fast], got %q", v)
	}
	rate, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return fmt.Errorf("%s: bit rate %q is not a number", name, parts[1])
	}
	bus := &orchestratorv1.Bus{Name: name}
	switch strings.ToLower(parts[0]) {
	case "can":
		can := &orchestratorv1.CanBus{BitRate: uint32(rate), PinPlus: 6, PinMinus: 14, Protocol: orchestratorv1.CanProtocol_CAN_PROTOCOL_ISOTP}
		for _, opt := range parts[2:] {
			switch {
			case opt == "frames":
				can.Protocol = orchestratorv1.CanProtocol_CAN_PROTOCOL_FRAMES
			case opt == "low-speed":
				can.LowSpeedTransceiver = true
			case strings.Contains(opt, "/"):
				plus, minus, _ := strings.Cut(opt, "/")
				p, err1 := strconv.ParseUint(plus, 10, 32)
				m, err2 := strconv.ParseUint(minus, 10, 32)
				if err1 != nil || err2 != nil {
					return fmt.Errorf("%s: pins %q: want PLUS/MINUS, e.g. 6/14", name, opt)
				}
				can.PinPlus, can.PinMinus = uint32(p), uint32(m)
			default:
				return fmt.Errorf("%s: unknown CAN option %q (want PLUS/MINUS, frames or low-speed)", name, opt)
			}
		}
		bus.Definition = &orchestratorv1.Bus_Can{Can: can}
	case "kline":
		kl := &orchestratorv1.KlineBus{BitRate: uint32(rate), Pin: 7}
		for _, opt := range parts[2:] {
			if opt == "fast" {
				kl.FastInit = true
				continue
			}
			p, err := strconv.ParseUint(opt, 10, 32)
			if err != nil {
				return fmt.Errorf("%s: unknown K-line option %q (want a pin number or fast)", name, opt)
			}
			kl.Pin = uint32(p)
		}
		bus.Definition = &orchestratorv1.Bus_Kline{Kline: kl}
	default:
		return fmt.Errorf("%s: bus kind %q: want can or kline", name, parts[0])
	}
	*b = append(*b, bus)
	return nil
}

func configureCmd(fs *flag.FlagSet) runFunc {
	var buses busFlags
	fs.Var(&buses, "bus", "bus `NAME=can,BITRATE[,PLUS/MINUS][,frames][,low-speed]` or `NAME=kline,BAUD[,PIN][,fast]`; repeat for up to four (CAN pins default to 6/14, K-line to 7)")
	lease := fs.String("lease", "", "lease `id` from acquire (required while the session is RUNNING)")
	dryRun := fs.Bool("dry-run", false, "check the configuration against the session and its connector, change nothing")
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) != 1 {
			return usagef("configure: want one SESSION_ID")
		}
		if len(buses) == 0 {
			return usagef("configure: give at least one --bus, e.g. --bus can0=can,500000")
		}
		ctx, err := e.dial(ctx)
		if err != nil {
			return err
		}
		cctx, cancel := e.call(ctx)
		defer cancel()
		resp, err := e.client.ConfigureBus(cctx, &orchestratorv1.ConfigureBusRequest{SessionId: args[0], LeaseId: *lease, Buses: buses, ValidateOnly: *dryRun})
		if err != nil {
			return err
		}
		if e.g.output == "json" {
			return printJSON(e.stdout, resp)
		}
		if *dryRun {
			fmt.Fprintln(e.stdout, "dry run: the configuration is valid for this session; nothing changed")
			var defs []string
			for _, b := range buses {
				defs = append(defs, busText(b))
			}
			fmt.Fprintf(e.stdout, "would configure: %s\n", strings.Join(defs, "; "))
			return nil
		}
		printSession(e.stdout, resp.GetSession())
		return nil
	}
}
