package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/obdorch/obdorch/connector/uds"
	orchestratorv1 "github.com/obdorch/obdorch/gen/orchestrator/v1"
)

// JSON output is the control plane's own messages in protobuf's JSON
// mapping with the proto field names (as in proto/orchestrator/v1), in a
// stable layout; streams print one object per line.

func jsonOf(m proto.Message) ([]byte, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	// protojson varies its whitespace on purpose; scripts and tests get one
	// layout.
	if err := json.Compact(&compact, b); err != nil {
		return nil, err
	}
	return compact.Bytes(), nil
}

func printJSON(w io.Writer, m proto.Message) error {
	b, err := jsonOf(m)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

func printJSONLine(w io.Writer, m proto.Message) error {
	b, err := jsonOf(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func printJSONValue(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func stateName(s orchestratorv1.SessionState) string {
	return strings.TrimPrefix(s.String(), "SESSION_STATE_")
}

func ticketStateName(s orchestratorv1.TicketState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "TICKET_STATE_"))
}

func ts(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func printTickets(w io.Writer, tickets []*orchestratorv1.Ticket) {
	tw := table(w)
	fmt.Fprintln(tw, "TICKET\tSTATE\tCONNECTOR\tVIN\tSESSION\tSESSION STATE")
	for _, t := range tickets {
		sst := "-"
		if t.GetSessionId() != "" {
			sst = stateName(t.GetSessionState())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", dash(t.GetTicketNumber()), ticketStateName(t.GetState()),
			dash(t.GetConnectorId()), dash(t.GetVin()), dash(t.GetSessionId()), sst)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d tickets\n", len(tickets))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printConnectors(w io.Writer, cs []*orchestratorv1.Connector) {
	tw := table(w)
	fmt.Fprintln(tw, "CONNECTOR\tNAME\tONLINE\tFREE\tVIN\tSESSION")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.GetId(), dash(c.GetName()), yesNo(c.GetOnline()), yesNo(c.GetFree()), dash(c.GetVin()), dash(c.GetSessionId()))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d connectors\n", len(cs))
}

func printSessions(w io.Writer, ss []*orchestratorv1.Session) {
	tw := table(w)
	fmt.Fprintln(tw, "SESSION\tSTATE\tTICKET\tVIN\tOWNER\tLEASE\tUPDATED\tREASON")
	for _, s := range ss {
		lease := "-"
		if l := s.GetLease(); l != nil {
			lease = l.GetHolder()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.GetId(), stateName(s.GetState()), dash(s.GetTicketNumber()),
			dash(s.GetVin()), dash(s.GetOwner()), lease, ts(s.GetUpdateTime()), dash(s.GetReason()))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d sessions\n", len(ss))
}

func printSession(w io.Writer, s *orchestratorv1.Session) {
	tw := table(w)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("session", s.GetId())
	row("state", stateName(s.GetState()))
	if s.GetTicketNumber() != "" || s.GetTicketId() != "" {
		row("ticket", strings.TrimSpace(s.GetTicketNumber()+" "+paren(s.GetTicketId())))
	}
	row("connector", s.GetConnectorId())
	row("vin", s.GetVin())
	row("owner", s.GetOwner())
	if s.GetOpenobdSessionId() != "" {
		row("openobd", s.GetOpenobdSessionId()+" "+paren(s.GetOpenobdState())+" at "+s.GetGrpcEndpoint())
	}
	if l := s.GetLease(); l != nil {
		row("lease", l.GetHolder()+", expires "+ts(l.GetExpireTime()))
	}
	for _, b := range s.GetBuses() {
		row("bus", busText(b))
	}
	if r := s.GetResult(); r != nil {
		var codes []string
		for _, c := range r.GetCodes() {
			codes = append(codes, strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(c.String(), "RESULT_CODE_"), "_", "-")))
		}
		row("result", strings.Join(codes, ",")+" "+r.GetDescription())
	}
	row("created", ts(s.GetCreateTime()))
	row("updated", ts(s.GetUpdateTime()))
	row("actor", s.GetActor())
	row("reason", s.GetReason())
	row("revision", fmt.Sprint(s.GetRevision()))
	tw.Flush()
	if len(s.GetHistory()) > 0 {
		fmt.Fprintln(w, "history:")
		tw = table(w)
		for _, h := range s.GetHistory() {
			fmt.Fprintf(tw, "  %s\t%s\tby %s\t%s\n", ts(h.GetTime()), transitionText(h), dash(h.GetActor()), h.GetReason())
		}
		tw.Flush()
	}
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}

func busText(b *orchestratorv1.Bus) string {
	switch {
	case b.GetCan() != nil:
		c := b.GetCan()
		return fmt.Sprintf("%s: CAN %d bit/s, pins %d/%d", b.GetName(), c.GetBitRate(), c.GetPinPlus(), c.GetPinMinus())
	case b.GetKline() != nil:
		k := b.GetKline()
		return fmt.Sprintf("%s: K-line %d baud, pin %d", b.GetName(), k.GetBitRate(), k.GetPin())
	}
	return b.GetName()
}

func transitionText(t *orchestratorv1.Transition) string {
	if t.GetFrom() == orchestratorv1.SessionState_SESSION_STATE_UNSPECIFIED {
		return "-> " + stateName(t.GetTo())
	}
	return stateName(t.GetFrom()) + " -> " + stateName(t.GetTo())
}

func printEvent(w io.Writer, ev *orchestratorv1.WatchSessionsResponse) {
	s := ev.GetSession()
	if t := ev.GetTransition(); t != nil {
		line := fmt.Sprintf("%s  rev %d  %s  %s  by %s", ts(t.GetTime()), ev.GetRevision(), s.GetId(), transitionText(t), dash(t.GetActor()))
		if t.GetReason() != "" {
			line += ": " + t.GetReason()
		}
		fmt.Fprintln(w, line)
		return
	}
	fmt.Fprintf(w, "%s  rev %d  %s  %s (updated)\n", ts(s.GetUpdateTime()), ev.GetRevision(), s.GetId(), stateName(s.GetState()))
}

func printStarted(w io.Writer, resp *orchestratorv1.StartSessionResponse, dryRun bool) {
	if dryRun {
		fmt.Fprintf(w, "dry run: %s\n", dash(resp.GetValidationSummary()))
		if s := resp.GetSession(); s != nil {
			fmt.Fprintf(w, "live session: %s (%s)\n", s.GetId(), stateName(s.GetState()))
		}
		return
	}
	s := resp.GetSession()
	verb := "started"
	if !resp.GetCreated() {
		verb = "already live"
	}
	fmt.Fprintf(w, "%s: session %s (%s)\n", verb, s.GetId(), stateName(s.GetState()))
}

func printAcquired(w io.Writer, resp *orchestratorv1.AcquireSessionResponse) {
	tw := table(w)
	s := resp.GetSession()
	fmt.Fprintf(tw, "session\t%s\n", s.GetId())
	fmt.Fprintf(tw, "state\t%s\n", stateName(s.GetState()))
	if s.GetTicketNumber() != "" {
		fmt.Fprintf(tw, "ticket\t%s\n", s.GetTicketNumber())
	}
	if s.GetVin() != "" {
		fmt.Fprintf(tw, "vin\t%s\n", s.GetVin())
	}
	fmt.Fprintf(tw, "lease\t%s\n", resp.GetLeaseId())
	fmt.Fprintf(tw, "expires\t%s\n", ts(resp.GetExpireTime()))
	tw.Flush()
}

// decoded is the answer to one UDS request, for people and scripts.
type decoded struct {
	SessionID string `json:"session_id"`
	Bus       string `json:"bus"`
	CAN       string `json:"can"`
	Request   string `json:"request"`
	Service   string `json:"service"`
	Response  string `json:"response"`
	Positive  bool   `json:"positive"`
	// NRC and NRCName describe a negative response.
	NRC     string `json:"nrc,omitempty"`
	NRCName string `json:"nrc_name,omitempty"`
	// Data is the positive response after the echoed service id and, for
	// ReadDataByIdentifier, the identifier; ASCII is Data when printable.
	Data     string `json:"data,omitempty"`
	ASCII    string `json:"ascii,omitempty"`
	ECUTime  string `json:"ecu_time"`
	Total    string `json:"total_time"`
	Attempts uint32 `json:"attempts"`
}

func hexOf(b []byte) string {
	return strings.ToUpper(strings.TrimSpace(fmt.Sprintf("% x", b)))
}

func decode(req []byte, resp *orchestratorv1.SendResponse) decoded {
	p := resp.GetPayload()
	d := decoded{
		Request: hexOf(req), Service: uds.SID(req[0]).String(), Response: hexOf(p), Positive: !resp.GetNegative(),
		ECUTime: resp.GetEcuTime().AsDuration().String(), Total: resp.GetTotalTime().AsDuration().String(), Attempts: resp.GetAttempts(),
	}
	if resp.GetNegative() {
		d.NRC = fmt.Sprintf("%02X", resp.GetNrc())
		d.NRCName = uds.NRC(resp.GetNrc()).String()
		return d
	}
	skip := 1
	if uds.SID(req[0]) == uds.ReadDataByIdentifier && len(req) >= 3 && len(p) >= 3 {
		skip = 3 // 62 DID-high DID-low
	}
	if len(p) > skip {
		data := p[skip:]
		d.Data = hexOf(data)
		if printable(data) {
			d.ASCII = string(data)
		}
	}
	return d
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7E {
			return false
		}
	}
	return len(b) > 0
}

func printDecoded(w io.Writer, d decoded) {
	tw := table(w)
	fmt.Fprintf(tw, "request\t%s  %s on %s %s\n", d.Request, d.Service, d.Bus, d.CAN)
	if d.Positive {
		fmt.Fprintf(tw, "positive\t%s\n", d.Response)
		if d.ASCII != "" {
			fmt.Fprintf(tw, "ascii\t%q\n", d.ASCII)
		}
	} else {
		fmt.Fprintf(tw, "negative\t%s  NRC 0x%s %s\n", d.Response, d.NRC, d.NRCName)
	}
	fmt.Fprintf(tw, "time\tecu %s, total %s, %d attempt(s)\n", d.ECUTime, d.Total, d.Attempts)
	tw.Flush()
}

func bashCompletion() string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	return `# bash completion for obdctl: source <(obdctl completion bash)
_obdctl() {
	local cur prev cmd
	cur="${COMP_WORDS[COMP_CWORD]}"
	prev="${COMP_WORDS[COMP_CWORD-1]}"
	cmd=""
	for w in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
		case "$w" in -*) ;; *) cmd="$w"; break ;; esac
	done
	case "$prev" in
	-o|--output) COMPREPLY=($(compgen -W "human json" -- "$cur")); return ;;
	--ecu) COMPREPLY=($(compgen -W "engine transmission body" -- "$cur")); return ;;
	--state) COMPREPLY=($(compgen -W "PENDING STARTING READY RUNNING FINISHING FINISHED FAILED INTERRUPTED" -- "$cur")); return ;;
	esac
	if [ -z "$cmd" ]; then
		COMPREPLY=($(compgen -W "` + strings.Join(names, " ") + ` --addr --token --tls --ca-cert --client-cert --client-key --output --timeout --version --help" -- "$cur"))
		return
	fi
	case "$cmd" in
	sessions) COMPREPLY=($(compgen -W "list get watch --state --ticket --connector --limit --since --session" -- "$cur")) ;;
	start) COMPREPLY=($(compgen -W "--ticket --connector --request-id --force --dry-run --wait --wait-timeout" -- "$cur")) ;;
	send) COMPREPLY=($(compgen -W "--lease --can --ecu --bus --response-timeout" -- "$cur")) ;;
	acquire) COMPREPLY=($(compgen -W "--ticket --connector --vin --runner --ttl --renew" -- "$cur")) ;;
	configure) COMPREPLY=($(compgen -W "--bus --lease --dry-run" -- "$cur")) ;;
	finish) COMPREPLY=($(compgen -W "--lease --result --feedback --description" -- "$cur")) ;;
	interrupt) COMPREPLY=($(compgen -W "--reason" -- "$cur")) ;;
	tickets) COMPREPLY=($(compgen -W "--state --page-size" -- "$cur")) ;;
	connectors) COMPREPLY=($(compgen -W "--free --page-size" -- "$cur")) ;;
	completion) COMPREPLY=($(compgen -W "bash" -- "$cur")) ;;
	esac
}
complete -F _obdctl obdctl
`
}
