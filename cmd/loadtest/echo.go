package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The bare gRPC hop: a service with no interceptors, no stats handler and
// no work, which sends back what it receives. Its unary method is the
// control plane's baseline, its bidi stream the relay's.
const (
	echoService      = "loadtest.v1.Echo"
	echoUnaryMethod  = "/" + echoService + "/Echo"
	echoStreamMethod = "/" + echoService + "/Stream"
)

var echoDesc = grpc.ServiceDesc{
	ServiceName: echoService,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			return in, nil
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Stream",
		ClientStreams: true,
		ServerStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			for {
				m := new(wrapperspb.BytesValue)
				if err := stream.RecvMsg(m); err != nil {
					if errors.Is(err, io.EOF) {
						return nil
					}
					return err
				}
				if err := stream.SendMsg(m); err != nil {
					return err
				}
			}
		},
	}},
}

// echoServer is the bare hop served on a loopback port, with one client
// connection to it.
type echoServer struct {
	srv  *grpc.Server
	done chan error
	conn *grpc.ClientConn
}

func startEcho() (*echoServer, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e := &echoServer{srv: grpc.NewServer(), done: make(chan error, 1)}
	e.srv.RegisterService(&echoDesc, struct{}{})
	go func() { e.done <- e.srv.Serve(lis) }()
	e.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *echoServer) close() {
	if e.conn != nil {
		_ = e.conn.Close()
	}
	e.srv.Stop()
	<-e.done
}

// unary returns an exchanger that calls the unary echo with payload.
func (e *echoServer) unary(payload []byte) exchanger {
	in := wrapperspb.Bytes(payload)
	return exchangeFunc(func(ctx context.Context) error {
		out := new(wrapperspb.BytesValue)
		if err := e.conn.Invoke(ctx, echoUnaryMethod, in, out); err != nil {
			return err
		}
		if !bytes.Equal(out.GetValue(), payload) {
			return fmt.Errorf("%w: echo sent back % X", errMismatch, out.GetValue())
		}
		return nil
	})
}

// stream opens an echo stream on ctx; each exchange sends payload and
// waits for it to come back.
func (e *echoServer) stream(ctx context.Context, payload []byte) (exchanger, error) {
	s, err := e.conn.NewStream(ctx, &echoDesc.Streams[0], echoStreamMethod)
	if err != nil {
		return nil, err
	}
	in := wrapperspb.Bytes(payload)
	return exchangeFunc(func(context.Context) error {
		if err := s.SendMsg(in); err != nil {
			return err
		}
		out := new(wrapperspb.BytesValue)
		if err := s.RecvMsg(out); err != nil {
			return err
		}
		if !bytes.Equal(out.GetValue(), payload) {
			return fmt.Errorf("%w: echo sent back % X", errMismatch, out.GetValue())
		}
		return nil
	}), nil
}
