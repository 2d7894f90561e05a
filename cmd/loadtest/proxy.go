package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The bare proxy: one more gRPC hop between a runner and openOBD that does no
// work of its own. It forwards every openOBD call to the fake as it
// comes, frames untouched (no decoding, no copy), one goroutine per
// direction of a stream, with no interceptors, stats handler or logic. The
// direct path's runner through it measures what one more hop costs by
// itself, the floor under the orchestrated path, which must also decode,
// check and translate each message.

// frame is a message the proxy carries without decoding it.
type frame struct{ data mem.BufferSlice }

// frameCodec hands frames through: Unmarshal keeps the received buffers and
// Marshal gives them to the transport, which frees them once written.
type frameCodec struct{}

func (frameCodec) Marshal(v any) (mem.BufferSlice, error) {
	f := v.(*frame)
	data := f.data
	f.data = nil
	return data, nil
}

func (frameCodec) Unmarshal(data mem.BufferSlice, v any) error {
	data.Ref()
	v.(*frame).data = data
	return nil
}

func (frameCodec) Name() string { return "proto" }

// The proxy's flow-control windows on both sides are those of the
// orchestrator's server and openOBD client, so that its hop batches as the
// orchestrator's does.
const (
	proxyStreamWindow = 64 << 10
	proxyConnWindow   = 1 << 20
)

type bareProxy struct {
	srv  *grpc.Server
	conn *grpc.ClientConn
	addr string
	done chan error
}

// startProxy serves the bare proxy in plaintext on a loopback port in front
// of the fake's openOBD endpoint (over TLS when tlsConf is set).
func startProxy(upstream string, tlsConf *tls.Config) (*bareProxy, error) {
	creds := insecure.NewCredentials()
	if tlsConf != nil {
		creds = credentials.NewTLS(tlsConf)
	}
	conn, err := grpc.NewClient(upstream, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(frameCodec{})),
		grpc.WithStaticStreamWindowSize(proxyStreamWindow), grpc.WithStaticConnWindowSize(proxyConnWindow))
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	p := &bareProxy{conn: conn, addr: lis.Addr().String(), done: make(chan error, 1)}
	p.srv = grpc.NewServer(grpc.UnknownServiceHandler(p.forward), grpc.ForceServerCodecV2(frameCodec{}),
		grpc.StaticStreamWindowSize(proxyStreamWindow), grpc.StaticConnWindowSize(proxyConnWindow))
	go func() { p.done <- p.srv.Serve(lis) }()
	return p, nil
}

func (p *bareProxy) close() {
	p.srv.Stop()
	<-p.done
	_ = p.conn.Close()
}

// forward carries one call of any method: the runner's messages on a
// goroutine of their own, openOBD's headers, messages, trailers and status
// on the handler's.
func (p *bareProxy) forward(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "proxy: no method")
	}
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	out := metadata.MD{}
	in, _ := metadata.FromIncomingContext(ctx)
	for k, v := range in {
		if !strings.HasPrefix(k, ":") && !strings.HasPrefix(k, "grpc-") && k != "content-type" && k != "user-agent" && k != "te" {
			out[k] = v
		}
	}
	cs, err := p.conn.NewStream(metadata.NewOutgoingContext(ctx, out), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
	if err != nil {
		return err
	}
	// The runner's side ends when the handler returns, which ends this
	// goroutine's RecvMsg.
	go func() {
		for {
			var f frame
			if err := ss.RecvMsg(&f); err != nil {
				if errors.Is(err, io.EOF) {
					_ = cs.CloseSend()
				} else {
					cancel()
				}
				return
			}
			if err := cs.SendMsg(&f); err != nil {
				return // the stream ended: RecvMsg below returns its status
			}
		}
	}()
	if md, err := cs.Header(); err == nil && len(md) > 0 {
		if err := ss.SendHeader(md); err != nil {
			return err
		}
	}
	for {
		var f frame
		if err := cs.RecvMsg(&f); err != nil {
			ss.SetTrailer(cs.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := ss.SendMsg(&f); err != nil {
			return err
		}
	}
}
