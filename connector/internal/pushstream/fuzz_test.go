package pushstream_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/obdorch/obdorch/connector/internal/pushstream"
)

// validResponse is what a server sends for one call on stream 1: response
// headers, two messages in three DATA frames, and trailers.
func validResponse() []byte {
	var out, hbuf bytes.Buffer
	fr := http2.NewFramer(&out, nil)
	enc := hpack.NewEncoder(&hbuf)
	block := func(fields ...string) []byte {
		hbuf.Reset()
		for i := 0; i < len(fields); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return append([]byte(nil), hbuf.Bytes()...)
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: block(":status", "200", "content-type", "application/grpc")})
	a, b := message("first"), message("second")
	fr.WriteData(1, false, a[:4])
	fr.WriteData(1, false, append(a[4:], b...))
	fr.WritePing(false, [8]byte{7})
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, EndStream: true, BlockFragment: block("grpc-status", "0")})
	return out.Bytes()
}

// FuzzServerFrames sends arbitrary bytes as the server's side of a
// connection, after a valid preface and SETTINGS, to one open call: the
// client must not panic or hang, and must end the call exactly once
// (Message calls only before End) by the time the connection closes.
func FuzzServerFrames(f *testing.F) {
	valid := validResponse()
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add([]byte{})
	f.Add([]byte{0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}) // GOAWAY
	f.Fuzz(func(t *testing.T, data []byte) {
		server, client := net.Pipe()
		defer server.Close()
		p := pushstream.NewPool("fuzz:1", pushstream.Options{
			Credentials: insecure.NewCredentials(),
			Dial:        func(context.Context, string) (net.Conn, error) { return client, nil },
		})
		defer p.Close()

		// The server reads everything the client writes (a pipe's writes
		// wait for the reader), and writes SETTINGS, the fuzzed bytes, and
		// hangs up.
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			io.Copy(io.Discard, server)
		}()
		served := make(chan struct{})
		go func() {
			defer close(served)
			defer server.Close()
			if err := http2.NewFramer(server, nil).WriteSettings(); err != nil {
				return
			}
			server.Write(data)
		}()
		defer func() { <-drained }()

		h := &onceHandler{t: t, end: make(chan error, 1)}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := p.Open(ctx, method, nil, nil, h); err != nil {
			if status.Code(err) == 0 {
				t.Fatalf("Open() = %v, want a status error", err)
			}
			<-served
			return
		}
		select {
		case err := <-h.end:
			if err == nil {
				t.Fatal("End(nil)")
			}
		case <-ctx.Done():
			t.Fatal("the call did not end after the connection closed")
		}
		<-served
	})
}

// onceHandler fails the test when End is called twice or Message after End.
type onceHandler struct {
	t     *testing.T
	ended bool
	end   chan error
}

func (h *onceHandler) Message([]byte) {
	if h.ended {
		h.t.Error("Message after End")
	}
}

func (h *onceHandler) End(err error) {
	if h.ended {
		h.t.Error("End called twice")
		return
	}
	h.ended = true
	h.end <- err
}
