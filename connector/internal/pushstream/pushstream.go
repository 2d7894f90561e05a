// Package pushstream carries server-streaming gRPC calls whose responses are
// handed to callbacks instead of being waited for in a blocking Recv. The
// calls to one address share HTTP/2 connections, and one goroutine per
// connection reads them all.
//
// It exists for openOBD's session-token streams: one stays open for every
// session the client holds, silent for two minutes between tokens. grpc-go
// spends two goroutines on every open stream (the caller's, blocked in Recv,
// and one of its own that watches the stream's context), which made them
// most of what an idle session cost. Here an open call costs a map entry
// and a small struct.
//
// It speaks what such calls need and no more: one request message, a stream
// of response messages, no compression, plaintext or TLS through gRPC's
// transport credentials, the peer's SETTINGS, flow control, PING (answered,
// and sent as keepalive), GOAWAY and RST_STREAM. Frames and header
// compression are golang.org/x/net/http2's, as in grpc-go itself.
package pushstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// Handler receives the responses and the end of one call. Its methods are
// called on the connection's reader goroutine, one at a time and in order:
// they must return quickly and must not call the Pool or the Stream.
type Handler interface {
	// Message is called with each response message; msg is valid only
	// during the call.
	Message(msg []byte)
	// End is called once when the call ends, unless Stream.Close ended it
	// first. err is io.EOF when the server ended the call with status OK,
	// otherwise a gRPC status error (codes.Unavailable when the connection
	// was lost or is going away).
	End(err error)
}

// Options configure a Pool.
type Options struct {
	// Credentials secure the connections (gRPC's TLS or insecure
	// credentials). Required.
	Credentials credentials.TransportCredentials
	// Dial opens a connection to addr. Default: a net.Dialer over TCP.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// DialTimeout bounds connecting and the TLS and HTTP/2 handshakes.
	// Default 20 s, gRPC's minimum connect timeout.
	DialTimeout time.Duration
	// KeepaliveTime is how long a connection with open calls may read
	// nothing before it sends a PING; KeepaliveTimeout how long it then waits
	// for any frame before it gives the connection up. Defaults 5 min and
	// 20 s.
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration
	// MaxMessageSize bounds one response message. Default 4 MiB, as gRPC's.
	MaxMessageSize int
	// UserAgent is sent as the user-agent header.
	UserAgent string
}

func (o Options) withDefaults() Options {
	if o.Dial == nil {
		var d net.Dialer
		o.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 20 * time.Second
	}
	if o.KeepaliveTime <= 0 {
		o.KeepaliveTime = 5 * time.Minute
	}
	if o.KeepaliveTimeout <= 0 {
		o.KeepaliveTimeout = 20 * time.Second
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 4 << 20
	}
	return o
}

// ErrClosed is returned by Open after Close.
var ErrClosed = status.Error(codes.Unavailable, "pushstream: pool closed")

// writeTimeout bounds one write to a connection: a peer that reads nothing
// for that long loses the connection rather than blocking its writers.
const writeTimeout = 10 * time.Second

// windowUpdateThreshold is how many received bytes of a stream or of the
// connection are returned to the peer's flow-control window at once.
const windowUpdateThreshold = 16 << 10

// Pool opens calls to one address over as few HTTP/2 connections as the
// peer's limit on concurrent streams allows. It is safe for concurrent use.
type Pool struct {
	addr      string
	authority string
	scheme    string
	opts      Options

	mu sync.Mutex
	// conns take new calls; live are all connections not yet failed, those
	// going away included.
	conns  []*conn
	live   map[*conn]struct{}
	closed bool
	// dialing is closed when the connection being dialled is ready or has
	// failed; nil when no dial is in progress.
	dialing chan struct{}
	wg      sync.WaitGroup // the connections' readers
}

// NewPool returns a pool of connections to addr (host:port), which is also
// the :authority of its calls.
func NewPool(addr string, opts Options) *Pool {
	opts = opts.withDefaults()
	scheme := "http"
	if opts.Credentials.Info().SecurityProtocol == "tls" {
		scheme = "https"
	}
	return &Pool{addr: addr, authority: addr, scheme: scheme, opts: opts, live: make(map[*conn]struct{})}
}

// Close closes the pool's connections and waits for their readers. Calls
// still open end with codes.Unavailable.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	live := p.live
	p.conns, p.live = nil, nil
	p.mu.Unlock()
	for c := range live {
		c.fail(ErrClosed)
	}
	p.wg.Wait()
	return nil
}

// Open starts a call of method (e.g. "/pkg.Service/Method") with the given
// request message and extra headers (lower-case names; those marked
// Sensitive are never added to the header compression table). It returns
// once the request is written; the responses and the end go to h. ctx
// bounds opening only: dialling a connection when none has room, and
// writing the request.
func (p *Pool) Open(ctx context.Context, method string, headers []hpack.HeaderField, req []byte, h Handler) (*Stream, error) {
	for {
		c, err := p.pick(ctx)
		if err != nil {
			return nil, err
		}
		s, err := c.open(method, headers, req, h)
		if errors.Is(err, errNoRoom) {
			continue // another caller took the last stream; pick again
		}
		return s, err
	}
}

// pick returns a connection with room for one more stream, dialling one
// when none has. One dial runs at a time; other callers wait for it.
func (p *Pool) pick(ctx context.Context) (*conn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		for _, c := range p.conns {
			if c.hasRoom() {
				p.mu.Unlock()
				return c, nil
			}
		}
		if wait := p.dialing; wait != nil {
			p.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, status.FromContextError(ctx.Err()).Err()
			}
		}
		done := make(chan struct{})
		p.dialing = done
		p.mu.Unlock()

		c, err := p.dial(ctx)
		p.mu.Lock()
		p.dialing = nil
		close(done)
		if err == nil && p.closed {
			err = ErrClosed
		}
		if err != nil {
			p.mu.Unlock()
			if c != nil {
				c.nc.Close()
			}
			return nil, err
		}
		p.conns = append(p.conns, c)
		p.live[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go c.readLoop()
		return c, nil
	}
}

// dial connects, runs the transport credentials' handshake and the HTTP/2
// preface, and reads the peer's SETTINGS.
func (p *Pool) dial(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.DialTimeout)
	defer cancel()
	raw, err := p.opts.Dial(ctx, p.addr)
	if err != nil {
		return nil, unavailable(ctx, "dial "+p.addr, err)
	}
	nc, _, err := p.opts.Credentials.ClientHandshake(ctx, p.authority, raw)
	if err != nil {
		raw.Close()
		return nil, unavailable(ctx, "handshake with "+p.addr, err)
	}
	c := newConn(p, nc)
	if d, ok := ctx.Deadline(); ok {
		nc.SetDeadline(d)
	}
	if err := c.handshake(); err != nil {
		return c, unavailable(ctx, "HTTP/2 handshake with "+p.addr, err)
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

// unavailable is the status of a failed dial: the context's when it ended
// the dial, codes.Unavailable otherwise.
func unavailable(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	return status.Errorf(codes.Unavailable, "pushstream: %s: %v", what, err)
}

// remove takes c out of the pool's choices for new calls, and out of the
// pool when it has failed.
func (p *Pool) remove(c *conn, failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if failed {
		delete(p.live, c)
	}
	for i, x := range p.conns {
		if x == c {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			return
		}
	}
}

// errNoRoom is returned by conn.open when the connection has no room left.
var errNoRoom = errors.New("pushstream: no stream left on the connection")

// conn is one HTTP/2 connection of a pool.
type conn struct {
	p  *Pool
	nc net.Conn
	fr *http2.Framer // read by readLoop; written under wmu

	wmu  sync.Mutex
	bw   *bufio.Writer
	henc *hpack.Encoder
	hbuf bytes.Buffer

	mu         sync.Mutex
	streams    map[uint32]*Stream
	nextID     uint32
	maxStreams uint32
	goingAway  bool
	err        error // why the connection failed; nil while it works
	unacked    uint32

	// lastRead is when the reader last got a frame (UnixNano); the
	// keepalive timer compares it with its own schedule.
	lastRead  atomic.Int64
	keepalive *time.Timer
	pinged    int64 // lastRead when the keepalive PING was sent; 0 when none is out
}

func newConn(p *Pool, nc net.Conn) *conn {
	c := &conn{
		p:          p,
		nc:         nc,
		bw:         bufio.NewWriterSize(nc, 4<<10),
		streams:    make(map[uint32]*Stream),
		nextID:     1,
		maxStreams: 100, // until the peer's SETTINGS say otherwise
	}
	c.fr = http2.NewFramer(c.bw, bufio.NewReaderSize(nc, 4<<10))
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 64 << 10
	c.henc = hpack.NewEncoder(&c.hbuf)
	return c
}

// handshake writes the client preface and reads the peer's SETTINGS, which
// must come first.
func (c *conn) handshake() error {
	if _, err := c.bw.WriteString(http2.ClientPreface); err != nil {
		return err
	}
	if err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0}); err != nil {
		return err
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	f, err := c.fr.ReadFrame()
	if err != nil {
		return err
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		return fmt.Errorf("first frame is %v, not SETTINGS", f.Header().Type)
	}
	c.applySettings(sf)
	if err := c.fr.WriteSettingsAck(); err != nil {
		return err
	}
	c.lastRead.Store(time.Now().UnixNano())
	return c.bw.Flush()
}

func (c *conn) applySettings(sf *http2.SettingsFrame) {
	if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); ok {
		c.mu.Lock()
		c.maxStreams = v
		c.mu.Unlock()
	}
	if v, ok := sf.Value(http2.SettingHeaderTableSize); ok {
		c.wmu.Lock()
		c.henc.SetMaxDynamicTableSizeLimit(v)
		c.wmu.Unlock()
	}
}

// hasRoom reports whether another stream may be opened now.
func (c *conn) hasRoom() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.roomLocked()
}

func (c *conn) roomLocked() bool {
	return c.err == nil && !c.goingAway && uint32(len(c.streams)) < c.maxStreams && c.nextID < 1<<31-1
}

// write runs fn, which writes frames, and flushes them, under the write
// lock and a deadline. It returns fn's errors unchanged, and a failed
// write as codes.Unavailable; send is write for callers that then give the
// connection up.
func (c *conn) write(fn func() error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	err := fn()
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil && !errors.Is(err, errNoRoom) {
		err = status.Errorf(codes.Unavailable, "pushstream: write to %s: %v", c.p.addr, err)
	}
	return err
}

// send writes like write and fails the connection when the write fails.
func (c *conn) send(fn func() error) {
	if err := c.write(fn); err != nil {
		c.fail(err)
	}
}

// open registers a stream and writes its HEADERS and its request DATA.
// Stream ids go on the wire in the order they are taken, so both happen
// under the write lock.
func (c *conn) open(method string, headers []hpack.HeaderField, req []byte, h Handler) (*Stream, error) {
	var s *Stream
	err := c.write(func() error {
		c.mu.Lock()
		if !c.roomLocked() {
			c.mu.Unlock()
			return errNoRoom
		}
		s = &Stream{c: c, id: c.nextID, h: h}
		c.nextID += 2
		c.streams[s.id] = s
		if len(c.streams) == 1 {
			c.armKeepalive()
		}
		c.mu.Unlock()

		c.hbuf.Reset()
		for _, f := range []hpack.HeaderField{
			{Name: ":method", Value: "POST"},
			{Name: ":scheme", Value: c.p.scheme},
			{Name: ":path", Value: method},
			{Name: ":authority", Value: c.p.authority},
			{Name: "content-type", Value: "application/grpc"},
			{Name: "te", Value: "trailers"},
		} {
			c.henc.WriteField(f)
		}
		if ua := c.p.opts.UserAgent; ua != "" {
			c.henc.WriteField(hpack.HeaderField{Name: "user-agent", Value: ua})
		}
		for _, f := range headers {
			c.henc.WriteField(f)
		}
		if err := c.writeHeaderBlock(s.id); err != nil {
			return err
		}
		msg := make([]byte, 5+len(req))
		binary.BigEndian.PutUint32(msg[1:5], uint32(len(req)))
		copy(msg[5:], req)
		return c.fr.WriteData(s.id, true, msg)
	})
	if errors.Is(err, errNoRoom) {
		return nil, errNoRoom
	}
	if err != nil {
		// The stream is taken out before the connection fails, so that its
		// handler hears nothing of a call that never opened.
		c.mu.Lock()
		delete(c.streams, s.id)
		c.mu.Unlock()
		c.fail(err)
		return nil, err
	}
	return s, nil
}

// writeHeaderBlock writes hbuf as a HEADERS frame and as many CONTINUATION
// frames as the peer's default frame size needs.
func (c *conn) writeHeaderBlock(id uint32) error {
	const maxFrame = 16 << 10
	block := c.hbuf.Bytes()
	first := block[:min(len(block), maxFrame)]
	block = block[len(first):]
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndHeaders: len(block) == 0}); err != nil {
		return err
	}
	for len(block) > 0 {
		frag := block[:min(len(block), maxFrame)]
		block = block[len(frag):]
		if err := c.fr.WriteContinuation(id, len(block) == 0, frag); err != nil {
			return err
		}
	}
	return nil
}

// readLoop reads the connection until it fails and hands each frame to its
// stream.
func (c *conn) readLoop() {
	defer c.p.wg.Done()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.lastRead.Store(time.Now().UnixNano())
				c.reset(se.StreamID, se.Code, status.Errorf(codes.Internal, "pushstream: stream error: %v", se))
				continue
			}
			c.fail(status.Errorf(codes.Unavailable, "pushstream: connection to %s lost: %v", c.p.addr, err))
			c.endAll()
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			c.onHeaders(f)
		case *http2.DataFrame:
			c.onData(f)
		case *http2.RSTStreamFrame:
			c.end(f.StreamID, rstError(f.ErrCode))
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.applySettings(f)
				c.send(c.fr.WriteSettingsAck)
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				c.send(func() error { return c.fr.WritePing(true, f.Data) })
			}
		case *http2.GoAwayFrame:
			c.onGoAway(f)
		}
	}
}

// onHeaders handles the response headers, or the trailers, of a stream.
func (c *conn) onHeaders(f *http2.MetaHeadersFrame) {
	s := c.stream(f.StreamID)
	if s == nil {
		return
	}
	if !s.gotHeaders {
		s.gotHeaders = true
		if err := responseHeadersError(f); err != nil {
			c.reset(s.id, http2.ErrCodeCancel, err)
			return
		}
		if !f.StreamEnded() {
			return
		}
		// A trailers-only response: the status is in these headers.
	} else if !f.StreamEnded() {
		c.reset(s.id, http2.ErrCodeProtocol, status.Error(codes.Internal, "pushstream: trailers without END_STREAM"))
		return
	}
	c.end(s.id, trailerStatus(f))
}

// onData appends a DATA frame to its stream's messages, hands over the
// complete ones, and gives the flow-control windows back.
func (c *conn) onData(f *http2.DataFrame) {
	n := f.Header().Length
	s := c.stream(f.StreamID)
	var update [2]uint32 // connection, stream
	c.mu.Lock()
	c.unacked += n
	if c.unacked >= windowUpdateThreshold {
		update[0], c.unacked = c.unacked, 0
	}
	c.mu.Unlock()
	if s != nil {
		s.unacked += n
		if s.unacked >= windowUpdateThreshold && !f.StreamEnded() {
			update[1], s.unacked = s.unacked, 0
		}
	}
	if update[0] > 0 || update[1] > 0 {
		c.send(func() error {
			if update[0] > 0 {
				if err := c.fr.WriteWindowUpdate(0, update[0]); err != nil {
					return err
				}
			}
			if update[1] > 0 {
				return c.fr.WriteWindowUpdate(s.id, update[1])
			}
			return nil
		})
	}
	if s == nil {
		return
	}
	if !s.gotHeaders {
		c.reset(s.id, http2.ErrCodeProtocol, status.Error(codes.Internal, "pushstream: DATA before response headers"))
		return
	}
	s.buf = append(s.buf, f.Data()...)
	for len(s.buf) >= 5 {
		if s.buf[0] != 0 {
			c.reset(s.id, http2.ErrCodeCancel, status.Error(codes.Internal, "pushstream: compressed response message, but no compression was offered"))
			return
		}
		size := binary.BigEndian.Uint32(s.buf[1:5])
		if int64(size) > int64(c.p.opts.MaxMessageSize) {
			c.reset(s.id, http2.ErrCodeCancel, status.Errorf(codes.ResourceExhausted,
				"pushstream: response message of %d bytes is larger than %d", size, c.p.opts.MaxMessageSize))
			return
		}
		if uint32(len(s.buf)-5) < size {
			break
		}
		s.h.Message(s.buf[5 : 5+size])
		s.buf = s.buf[5+size:]
	}
	if len(s.buf) == 0 {
		s.buf = nil // an idle stream keeps no buffer
	}
	if f.StreamEnded() {
		c.end(s.id, status.Error(codes.Internal, "pushstream: server closed the stream without trailers"))
	}
}

// onGoAway stops new streams on the connection and ends those the server
// will not process.
func (c *conn) onGoAway(f *http2.GoAwayFrame) {
	c.mu.Lock()
	c.goingAway = true
	var refused []uint32
	for id := range c.streams {
		if id > f.LastStreamID {
			refused = append(refused, id)
		}
	}
	c.mu.Unlock()
	c.p.remove(c, false)
	for _, id := range refused {
		c.end(id, status.Errorf(codes.Unavailable, "pushstream: connection to %s is going away (%v)", c.p.addr, f.ErrCode))
	}
	c.closeIfDrained()
}

// stream returns the open stream id, or nil.
func (c *conn) stream(id uint32) *Stream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[id]
}

// end removes stream id and reports err to its handler, unless it has
// ended already.
func (c *conn) end(id uint32, err error) {
	c.mu.Lock()
	s := c.streams[id]
	delete(c.streams, id)
	c.mu.Unlock()
	if s != nil {
		s.h.End(err)
		c.closeIfDrained()
	}
}

// reset ends stream id with err and tells the peer with code.
func (c *conn) reset(id uint32, code http2.ErrCode, err error) {
	c.end(id, err)
	c.send(func() error { return c.fr.WriteRSTStream(id, code) })
}

// closeIfDrained closes a connection that is going away once its last
// stream has ended.
func (c *conn) closeIfDrained() {
	c.mu.Lock()
	drained := c.goingAway && len(c.streams) == 0
	c.mu.Unlock()
	if drained {
		c.fail(status.Errorf(codes.Unavailable, "pushstream: connection to %s went away", c.p.addr))
	}
}

// fail records err as why the connection failed and closes it; only the
// first call counts. The reader, whose next read fails then, ends the
// streams with err (endAll), so that handlers hear everything from it.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	if c.keepalive != nil {
		c.keepalive.Stop()
	}
	c.mu.Unlock()
	c.p.remove(c, true)
	c.nc.Close()
}

// endAll ends the streams of a failed connection with its error.
func (c *conn) endAll() {
	c.mu.Lock()
	streams, err := c.streams, c.err
	c.streams = nil
	c.mu.Unlock()
	for _, s := range streams {
		s.h.End(err)
	}
}

// armKeepalive starts the keepalive timer when the first stream opens;
// called with c.mu held.
func (c *conn) armKeepalive() {
	if c.keepalive == nil {
		c.keepalive = time.AfterFunc(c.p.opts.KeepaliveTime, c.checkAlive)
	}
}

// checkAlive runs on the keepalive timer: when nothing was read for
// KeepaliveTime it sends a PING, and when nothing was read for
// KeepaliveTimeout after that, it gives the connection up. A connection
// without streams sends no PINGs (gRPC servers refuse them by default).
func (c *conn) checkAlive() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	last := c.lastRead.Load()
	idle := time.Since(time.Unix(0, last))
	switch {
	case c.pinged != 0 && last == c.pinged:
		c.mu.Unlock()
		c.fail(status.Errorf(codes.Unavailable, "pushstream: connection to %s: keepalive PING not answered within %s", c.p.addr, c.p.opts.KeepaliveTimeout))
		return
	case idle < c.p.opts.KeepaliveTime || len(c.streams) == 0:
		c.pinged = 0
		c.keepalive.Reset(max(c.p.opts.KeepaliveTime-idle, time.Second))
		c.mu.Unlock()
		return
	}
	c.pinged = last
	c.keepalive.Reset(c.p.opts.KeepaliveTimeout)
	c.mu.Unlock()
	c.send(func() error { return c.fr.WritePing(false, [8]byte{'k', 'e', 'e', 'p', 'a', 'l', 'i', 'v'}) })
}

// Stream is one open call.
type Stream struct {
	c  *conn
	id uint32
	h  Handler
	// Only the reader goroutine touches these.
	gotHeaders bool
	buf        []byte
	unacked    uint32
}

// Close cancels the call (RST_STREAM CANCEL) if it is still open. The
// handler's End is not called after Close; a Message the reader has
// started to hand over may still arrive.
func (s *Stream) Close() {
	c := s.c
	c.mu.Lock()
	_, open := c.streams[s.id]
	delete(c.streams, s.id)
	failed := c.err != nil
	c.mu.Unlock()
	if !open || failed {
		return
	}
	c.send(func() error { return c.fr.WriteRSTStream(s.id, http2.ErrCodeCancel) })
	c.closeIfDrained()
}

// responseHeadersError checks the first headers of a response: HTTP status
// 200 and a gRPC content type, as gRPC clients do.
func responseHeadersError(f *http2.MetaHeadersFrame) error {
	if st := f.PseudoValue("status"); st != "200" {
		code := codes.Unknown
		switch n, _ := strconv.Atoi(st); n {
		case 400:
			code = codes.Internal
		case 401:
			code = codes.Unauthenticated
		case 403:
			code = codes.PermissionDenied
		case 404:
			code = codes.Unimplemented
		case 429, 502, 503, 504:
			code = codes.Unavailable
		}
		if f.StreamEnded() && header(f, "grpc-status") != "" {
			return trailerStatus(f)
		}
		return status.Errorf(code, "pushstream: unexpected HTTP status %q", st)
	}
	if ct := header(f, "content-type"); !strings.HasPrefix(ct, "application/grpc") {
		return status.Errorf(codes.Unknown, "pushstream: unexpected content-type %q", ct)
	}
	return nil
}

// trailerStatus is the end of a call as its trailers give it: io.EOF for
// OK, the status error otherwise.
func trailerStatus(f *http2.MetaHeadersFrame) error {
	v := header(f, "grpc-status")
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return status.Errorf(codes.Internal, "pushstream: malformed grpc-status %q", v)
	}
	if n == 0 {
		return io.EOF
	}
	return status.Error(codes.Code(n), decodeGRPCMessage(header(f, "grpc-message")))
}

// decodeGRPCMessage undoes the percent-encoding of grpc-message.
func decodeGRPCMessage(msg string) string {
	if !strings.Contains(msg, "%") {
		return msg
	}
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		if msg[i] == '%' && i+2 < len(msg) {
			if v, err := strconv.ParseUint(msg[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(msg[i])
	}
	return b.String()
}

// rstError is the status of a stream the peer reset, as grpc-go maps it.
func rstError(code http2.ErrCode) error {
	c := codes.Internal
	switch code {
	case http2.ErrCodeRefusedStream:
		c = codes.Unavailable
	case http2.ErrCodeCancel:
		c = codes.Canceled
	case http2.ErrCodeFlowControl, http2.ErrCodeEnhanceYourCalm:
		c = codes.ResourceExhausted
	case http2.ErrCodeInadequateSecurity:
		c = codes.PermissionDenied
	}
	return status.Errorf(c, "pushstream: stream reset by the server: %v", code)
}

// header returns the value of the regular header name (lower case), or "".
func header(f *http2.MetaHeadersFrame, name string) string {
	for _, hf := range f.RegularFields() {
		if hf.Name == name {
			return hf.Value
		}
	}
	return ""
}
