#!/usr/bin/env python3
"""Reference runner in Python: acquire a READY session from the orchestrator,
read the VIN and DTCs of each ECU, print them and finish the session.

    go run ./cmd/orchestrator --demo &        # from the repository root
    python3 examples/python/runner.py --addr 127.0.0.1:7600

Needs grpcio and protobuf (Debian: python3-grpcio, python3-protobuf; pip:
grpcio, protobuf) and the generated stubs in gen/python (found relative to
this file, or on PYTHONPATH). The runner holds a lease id, never an openOBD
token.
"""

import argparse
import os
import queue
import sys
import threading

import grpc
from google.protobuf import duration_pb2

try:
    from orchestrator.v1 import orchestrator_pb2 as pb, orchestrator_pb2_grpc as pb_grpc
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "gen", "python"))
    from orchestrator.v1 import orchestrator_pb2 as pb, orchestrator_pb2_grpc as pb_grpc

import uds

DEFAULT_ECUS = "engine=0x7E0/0x7E8,transmission=0x7E1/0x7E9,body=0x7E2/0x7EA"


class SessionLost(Exception):
    """The lease was lost or the session was interrupted."""


class Lease:
    """Renews a session's lease in a background thread until stopped."""

    def __init__(self, stub, runner, lease_id, ttl_s):
        self.stub, self.runner, self.lease_id, self.ttl_s = stub, runner, lease_id, ttl_s
        self.stop_event = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_event.wait(self.ttl_s / 3):
            try:
                self.stub.AcquireSession(pb.AcquireSessionRequest(
                    runner=self.runner, renew_lease_id=self.lease_id,
                    lease_ttl=duration_pb2.Duration(seconds=self.ttl_s)), timeout=10)
            except grpc.RpcError as e:
                if e.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED):
                    self.error = "%s: %s" % (e.code().name, e.details())
                    return
                # Transient (UNAVAILABLE...): try again at the next period.

    def stop(self):
        self.stop_event.set()
        self.thread.join()


class Channel:
    """One Exchange stream to one ECU: requests go out one at a time with a
    correlation id and each answer is matched to its request."""

    def __init__(self, stub, session_id, lease_id, request_id, response_id, bus="can0"):
        self.requests = queue.Queue()
        self.next_id = 0
        self.requests.put(pb.ExchangeRequest(open=pb.OpenChannel(
            session_id=session_id, lease_id=lease_id,
            channel=pb.Channel(bus_name=bus, request_id=request_id, response_id=response_id))))
        self.responses = stub.Exchange(iter(self.requests.get, None))
        first = next(self.responses)
        if not first.HasField("opened"):
            raise RuntimeError("the orchestrator did not confirm the channel")

    def request(self, payload):
        """Send one UDS request; return the positive answer's bytes or raise
        uds.NegativeResponse."""
        self.next_id += 1
        cid = self.next_id
        self.requests.put(pb.ExchangeRequest(request=pb.UdsRequest(correlation_id=cid, payload=payload)))
        try:
            for msg in self.responses:
                r = msg.response
                if r.correlation_id != cid:
                    continue  # an answer to nothing outstanding
                if r.HasField("error"):
                    raise RuntimeError("request %s failed: %s" % (payload.hex(), r.error.message))
                return uds.check(payload, r.payload)
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED):
                raise SessionLost("%s: %s" % (e.code().name, e.details())) from e
            raise
        raise RuntimeError("the channel ended")

    def close(self):
        self.requests.put(None)  # half-close; the orchestrator ends the stream
        for _ in self.responses:
            pass


def parse_ecus(text):
    ecus = []
    for part in text.split(","):
        name, _, ids = part.strip().partition("=")
        req, _, rsp = ids.partition("/")
        if not name or not req or not rsp:
            raise ValueError("--ecus %r: want name=requestID/responseID" % part)
        ecus.append((name, int(req, 0), int(rsp, 0)))
    return ecus


def read_ecu(stub, session_id, lease_id, name, req_id, rsp_id):
    ch = Channel(stub, session_id, lease_id, req_id, rsp_id)
    try:
        vin = ch.request(bytes([0x22, 0xF1, 0x90]))[3:].decode("ascii")
        dtcs = uds.parse_dtcs(ch.request(bytes([0x19, 0x02, 0xFF])))
    finally:
        ch.close()
    print("%s (0x%X/0x%X): VIN %s, %d DTCs" % (name, req_id, rsp_id, vin, len(dtcs)))
    for code, status in dtcs:
        print("  %s status 0x%02X %s" % (uds.dtc_name(code), status, "|".join(uds.status_names(status))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", default="127.0.0.1:7600", help="orchestrator control-plane address")
    ap.add_argument("--name", default="python-reference-runner", help="runner name recorded in the history")
    ap.add_argument("--ticket", default="", help="only a session of this ticket (UUID or number)")
    ap.add_argument("--wait", type=float, default=30, help="seconds to wait for a READY session")
    ap.add_argument("--ecus", default=DEFAULT_ECUS, help="ECUs to read: name=requestID/responseID,...")
    args = ap.parse_args()
    ecus = parse_ecus(args.ecus)

    channel = grpc.insecure_channel(args.addr)
    token = os.environ.get("ORCHESTRATOR_TOKEN")
    metadata = [("authorization", "Bearer " + token)] if token else None
    if metadata:
        channel = grpc.intercept_channel(channel, _Auth(metadata))
    stub = pb_grpc.OrchestratorServiceStub(channel)

    ttl = 30
    acquired = stub.AcquireSession(pb.AcquireSessionRequest(
        runner=args.name, ticket_id=args.ticket, lease_ttl=duration_pb2.Duration(seconds=ttl)), timeout=args.wait)
    s = acquired.session
    print("session %s: ticket %s, connector %s, VIN %s" % (s.id, s.ticket_number, s.connector_id, s.vin))
    lease = Lease(stub, args.name, acquired.lease_id, ttl)
    failures = 0
    try:
        for name, req_id, rsp_id in ecus:
            try:
                read_ecu(stub, s.id, acquired.lease_id, name, req_id, rsp_id)
            except (uds.NegativeResponse, RuntimeError, ValueError) as e:
                failures += 1
                print("%s: %s" % (name, e))
    except SessionLost as e:
        print("runner: session lost: %s" % e, file=sys.stderr)
        return 1
    finally:
        lease.stop()
    if lease.error:
        print("runner: lease lost: %s" % lease.error, file=sys.stderr)
        return 1
    if failures:
        result = pb.FinishResult(codes=[pb.RESULT_CODE_FAILURE_COMMUNICATION_ERROR], user_feedback=pb.USER_FEEDBACK_FAILURE,
                                 description="%d of %d ECUs could not be read" % (failures, len(ecus)))
    else:
        result = pb.FinishResult(codes=[pb.RESULT_CODE_SUCCESS], user_feedback=pb.USER_FEEDBACK_SUCCESS,
                                 description="read VIN and DTCs of %d ECUs" % len(ecus))
    done = stub.FinishSession(pb.FinishSessionRequest(session_id=s.id, lease_id=acquired.lease_id, result=result), timeout=30)
    print("session %s %s: %s" % (done.session.id, pb.SessionState.Name(done.session.state).replace("SESSION_STATE_", ""), result.description))
    return 1 if failures else 0


class _Auth(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the bearer token to every call."""

    def __init__(self, metadata):
        self.metadata = metadata

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(_CallDetails(client_call_details, self.metadata), request)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(_CallDetails(client_call_details, self.metadata), request_iterator)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, d, metadata):
        self.method, self.timeout, self.credentials = d.method, d.timeout, d.credentials
        self.wait_for_ready, self.compression = getattr(d, "wait_for_ready", None), getattr(d, "compression", None)
        self.metadata = list(d.metadata or []) + metadata


if __name__ == "__main__":
    try:
        sys.exit(main())
    except grpc.RpcError as e:
        print("runner: %s: %s" % (e.code().name, e.details()), file=sys.stderr)
        sys.exit(1)
