package pushstream_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/obdorch/obdorch/connector/internal/pushstream"
	openobdv1 "github.com/obdorch/obdorch/gen/openobd/v1"
)

// peer is the server side of one connection, written frame by frame: for
// what grpc-go's server never does on its own.
type peer struct {
	t    *testing.T
	conn net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
}

// scripted listens on loopback and runs script on each accepted
// connection, after the preface and the SETTINGS exchange (the server's
// SETTINGS carry settings).
func scripted(t *testing.T, settings []http2.Setting, script func(*peer)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			go func() {
				p := &peer{t: t, conn: c, fr: http2.NewFramer(c, c)}
				p.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
				p.henc = hpack.NewEncoder(&p.hbuf)
				preface := make([]byte, len(http2.ClientPreface))
				if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
					c.Close()
					return
				}
				if err := p.fr.WriteSettings(settings...); err != nil {
					return
				}
				script(p)
			}()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return lis.Addr().String()
}

// awaitHeaders reads frames until the client's HEADERS and returns their
// stream id.
func (p *peer) awaitHeaders() uint32 {
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			return 0
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok {
			return h.StreamID
		}
	}
}

// readUntil reads frames until match returns true; false when the
// connection ended first.
func (p *peer) readUntil(match func(http2.Frame) bool) bool {
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			return false
		}
		if match(f) {
			return true
		}
	}
}

func (p *peer) headers(id uint32, end bool, fields ...string) {
	p.hbuf.Reset()
	for i := 0; i < len(fields); i += 2 {
		p.henc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.hbuf.Bytes(), EndHeaders: true, EndStream: end})
}

func (p *peer) ok(id uint32) {
	p.headers(id, false, ":status", "200", "content-type", "application/grpc")
}

// message is one gRPC-framed SessionToken.
func message(value string) []byte {
	b, _ := proto.Marshal(&openobdv1.SessionToken{Value: value})
	out := make([]byte, 5+len(b))
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)))
	copy(out[5:], b)
	return out
}

func openOn(t *testing.T, addr string, opts pushstream.Options) (*pushstream.Pool, *recorder) {
	t.Helper()
	p := newPool(t, addr, opts)
	r := newRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.Open(ctx, method, nil, nil, r); err != nil {
		t.Fatalf("Open() = %v", err)
	}
	return p, r
}

// TestMessagesSplitAndJoinedAcrossFrames: messages are cut out of DATA
// frames whatever the frames' boundaries.
func TestMessagesSplitAndJoinedAcrossFrames(t *testing.T) {
	addr := scripted(t, nil, func(p *peer) {
		id := p.awaitHeaders()
		p.ok(id)
		a, b, c := message("first"), message("second"), message("third")
		p.fr.WriteData(id, false, a[:3])
		p.fr.WriteData(id, false, a[3:])
		p.fr.WriteData(id, false, append(append([]byte{}, b...), c[:7]...))
		p.fr.WriteData(id, false, c[7:])
		p.headers(id, true, "grpc-status", "0")
	})
	_, r := openOn(t, addr, pushstream.Options{})
	for _, want := range []string{"first", "second", "third"} {
		if got := r.next(t); got != want {
			t.Fatalf("message = %q, want %q", got, want)
		}
	}
	if err := r.ended(t); err != io.EOF {
		t.Errorf("end = %v, want io.EOF", err)
	}
}

// TestBadResponses: what a gRPC client refuses ends the call with the code
// gRPC gives it.
func TestBadResponses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script func(p *peer, id uint32)
		want   codes.Code
	}{
		{"trailers only", func(p *peer, id uint32) {
			p.headers(id, true, ":status", "200", "content-type", "application/grpc", "grpc-status", "7", "grpc-message", "denied")
		}, codes.PermissionDenied},
		{"HTTP 503", func(p *peer, id uint32) { p.headers(id, true, ":status", "503") }, codes.Unavailable},
		{"not gRPC", func(p *peer, id uint32) { p.headers(id, false, ":status", "200", "content-type", "text/html") }, codes.Unknown},
		{"compressed", func(p *peer, id uint32) {
			p.ok(id)
			m := message("x")
			m[0] = 1
			p.fr.WriteData(id, false, m)
		}, codes.Internal},
		{"too large", func(p *peer, id uint32) {
			p.ok(id)
			p.fr.WriteData(id, false, []byte{0, 0, 1, 0, 0}) // 64 KiB announced
		}, codes.ResourceExhausted},
		{"reset refused", func(p *peer, id uint32) { p.fr.WriteRSTStream(id, http2.ErrCodeRefusedStream) }, codes.Unavailable},
		{"end without trailers", func(p *peer, id uint32) {
			p.ok(id)
			p.fr.WriteData(id, true, message("x"))
		}, codes.Internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := scripted(t, nil, func(p *peer) {
				id := p.awaitHeaders()
				tc.script(p, id)
				p.readUntil(func(http2.Frame) bool { return false }) // until the client goes
			})
			_, r := openOn(t, addr, pushstream.Options{MaxMessageSize: 1 << 10})
			// "end without trailers" delivers its message first.
			_, err, ended := r.event(t)
			for !ended {
				_, err, ended = r.event(t)
			}
			if status.Code(err) != tc.want {
				t.Errorf("end = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestGoAway: a GOAWAY ends the calls the server will not process, lets
// the others run on, and sends new calls to a new connection.
func TestGoAway(t *testing.T) {
	conns := make(chan *peer, 2)
	addr := scripted(t, nil, func(p *peer) {
		conns <- p
		p.readUntil(func(http2.Frame) bool { return false })
	})
	pool := newPool(t, addr, pushstream.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kept, refused := newRecorder(), newRecorder()
	if _, err := pool.Open(ctx, method, nil, nil, kept); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Open(ctx, method, nil, nil, refused); err != nil {
		t.Fatal(err)
	}
	first := <-conns
	first.ok(1)
	first.fr.WriteGoAway(1, http2.ErrCodeNo, nil)
	if err := refused.ended(t); status.Code(err) != codes.Unavailable {
		t.Errorf("stream 3 after GOAWAY(1) ended with %v, want Unavailable", err)
	}
	first.fr.WriteData(1, false, message("still here"))
	if got := kept.next(t); got != "still here" {
		t.Errorf("stream 1 message = %q", got)
	}
	r := newRecorder()
	if _, err := pool.Open(ctx, method, nil, nil, r); err != nil {
		t.Fatal(err)
	}
	select {
	case <-conns:
	case <-time.After(10 * time.Second):
		t.Fatal("no new connection after GOAWAY")
	}
}

// TestMaxConcurrentStreams: calls beyond the server's limit go to another
// connection.
func TestMaxConcurrentStreams(t *testing.T) {
	addr := scripted(t, []http2.Setting{{ID: http2.SettingMaxConcurrentStreams, Val: 2}}, func(p *peer) {
		p.readUntil(func(http2.Frame) bool { return false })
	})
	var dials atomic.Int32
	pool := newPool(t, addr, pushstream.Options{Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		if _, err := pool.Open(ctx, method, nil, nil, newRecorder()); err != nil {
			t.Fatal(err)
		}
	}
	if n := dials.Load(); n != 2 {
		t.Errorf("%d connections for 3 calls at 2 streams each, want 2", n)
	}
}

// TestPingAnswered: the client answers the server's PINGs.
func TestPingAnswered(t *testing.T) {
	acked := make(chan struct{})
	addr := scripted(t, nil, func(p *peer) {
		p.awaitHeaders()
		p.fr.WritePing(false, [8]byte{1, 2, 3})
		if p.readUntil(func(f http2.Frame) bool {
			pf, ok := f.(*http2.PingFrame)
			return ok && pf.IsAck() && pf.Data == [8]byte{1, 2, 3}
		}) {
			close(acked)
		}
		p.readUntil(func(http2.Frame) bool { return false })
	})
	openOn(t, addr, pushstream.Options{})
	select {
	case <-acked:
	case <-time.After(10 * time.Second):
		t.Fatal("PING not acknowledged")
	}
}

// TestKeepalive: a connection that reads nothing sends a PING, and gives up
// when nothing answers it.
func TestKeepalive(t *testing.T) {
	pinged := make(chan struct{})
	addr := scripted(t, nil, func(p *peer) {
		p.awaitHeaders()
		p.ok(1)
		if p.readUntil(func(f http2.Frame) bool {
			pf, ok := f.(*http2.PingFrame)
			return ok && !pf.IsAck()
		}) {
			close(pinged)
		}
		p.readUntil(func(http2.Frame) bool { return false }) // and never answer
	})
	_, r := openOn(t, addr, pushstream.Options{KeepaliveTime: 20 * time.Millisecond, KeepaliveTimeout: 20 * time.Millisecond})
	select {
	case <-pinged:
	case <-time.After(10 * time.Second):
		t.Fatal("no keepalive PING")
	}
	if err := r.ended(t); status.Code(err) != codes.Unavailable {
		t.Errorf("end = %v, want Unavailable", err)
	}
}
