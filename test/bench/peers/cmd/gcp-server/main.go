// gcp-server: go-control-plane serving the xds-fanout bench mesh, so the
// bench can put protoplane beside a well-known Go control plane under the
// same load.
//
// It serves, over ADS (SotW and Delta, both from server/v3's NewServer), the
// same resources protoplane translates the bench mesh to: clusters
// c0000..c{N-1} as EDS-over-ADS clusters (connect_timeout 5s, ROUND_ROBIN),
// one ClusterLoadAssignment per cluster with a single endpoint
// 127.0.0.1:<endpoint-base-port + i>, and one tcp_proxy listener to c0000.
//
// Snapshot cache: cache/v3 NewSnapshotCache(ads=true) with a node hash on
// node.cluster (falling back to node.id), the same grouping protoplane uses,
// so every simulated Envoy (node cluster "bench") shares one snapshot that is
// set once.
//
// Control HTTP (127.0.0.1 only):
//
//	GET  /ready   200 once the snapshot is set
//	GET  /memstats  Go heap (runtime.MemStats, no forced GC) and goroutines
//	POST /change  sets snapshot version 2, in which cluster c0500 (the
//	              --changed cluster) has connect_timeout 7s; every resource of
//	              the snapshot gets the new version string, as usual with
//	              cache.NewSnapshot
//
// On start it prints one line `LISTENING xds=<port> control=<port>`.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
)

// clusterHash groups nodes like protoplane does: node.cluster, else node.id.
type clusterHash struct{}

func (clusterHash) ID(node *corev3.Node) string {
	if node == nil {
		return ""
	}
	if node.GetCluster() != "" {
		return node.GetCluster()
	}
	return node.GetId()
}

func clusterName(i int) string { return fmt.Sprintf("c%04d", i) }

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func buildSnapshot(version string, clusters, basePort int, changed string, changedTimeout time.Duration) (*cachev3.Snapshot, error) {
	cds := make([]types.Resource, 0, clusters)
	eds := make([]types.Resource, 0, clusters)
	for i := 0; i < clusters; i++ {
		name := clusterName(i)
		timeout := 5 * time.Second
		if name == changed {
			timeout = changedTimeout
		}
		cds = append(cds, &clusterv3.Cluster{
			Name:                 name,
			ConnectTimeout:       durationpb.New(timeout),
			LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
		})
		eds = append(eds, &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address: socketAddress("127.0.0.1", uint32(basePort+i)),
					}},
				}},
			}},
		})
	}
	tcp, err := anypb.New(&tcpproxyv3.TcpProxy{
		StatPrefix:       "bench",
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: clusterName(0)},
	})
	if err != nil {
		return nil, err
	}
	lds := []types.Resource{&listenerv3.Listener{
		Name:    "bench",
		Address: socketAddress("0.0.0.0", 10000),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       "envoy.filters.network.tcp_proxy",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tcp},
			}},
		}},
	}}
	return cachev3.NewSnapshot(version, map[resourcev3.Type][]types.Resource{
		resourcev3.ClusterType:  cds,
		resourcev3.EndpointType: eds,
		resourcev3.ListenerType: lds,
	})
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func main() {
	xdsPort := flag.Int("xds-port", 0, "xDS gRPC port on 127.0.0.1 (0: any free port)")
	controlPort := flag.Int("control-port", 0, "control HTTP port on 127.0.0.1 (0: any free port)")
	clusters := flag.Int("clusters", 1000, "number of clusters")
	basePort := flag.Int("endpoint-base-port", 20000, "endpoint of cluster i is 127.0.0.1:<base+i>")
	changed := flag.String("changed", "c0500", "cluster whose connect_timeout becomes 7s on POST /change")
	group := flag.String("group", "bench", "node group (node.cluster) to set the snapshot for")
	flag.Parse()

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()

	cache := cachev3.NewSnapshotCache(true, clusterHash{}, nil)
	snap, err := buildSnapshot("1", *clusters, *basePort, *changed, 5*time.Second)
	if err != nil {
		fail(err)
	}
	if err := cache.SetSnapshot(ctx, *group, snap); err != nil {
		fail(err)
	}

	srv := serverv3.NewServer(ctx, cache, nil)
	grpcServer := grpc.NewServer(grpc.MaxConcurrentStreams(1 << 20))
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(grpcServer, srv)
	xdsListener, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(*xdsPort))
	if err != nil {
		fail(err)
	}
	go func() {
		if err := grpcServer.Serve(xdsListener); err != nil {
			fmt.Fprintln(os.Stderr, "gcp-server: grpc:", err)
		}
	}()

	var mu sync.Mutex
	version := 1
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/memstats", func(w http.ResponseWriter, _ *http.Request) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m) // no forced GC: the heap as the server carries it
		fmt.Fprintf(w, "{\"heap_alloc\":%d,\"heap_inuse\":%d,\"sys\":%d,\"goroutines\":%d,\"num_gc\":%d}\n",
			m.HeapAlloc, m.HeapInuse, m.Sys, runtime.NumGoroutine(), m.NumGC)
	})
	mux.HandleFunc("/change", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		start := time.Now()
		version++
		next, err := buildSnapshot(strconv.Itoa(version), *clusters, *basePort, *changed, 7*time.Second)
		if err == nil {
			err = cache.SetSnapshot(context.Background(), *group, next)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "{\"version\":\"%d\",\"set_snapshot_ms\":%.3f}\n", version, float64(time.Since(start).Microseconds())/1000)
	})
	controlListener, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(*controlPort))
	if err != nil {
		fail(err)
	}
	httpServer := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = httpServer.Serve(controlListener) }()

	fmt.Printf("LISTENING xds=%d control=%d\n", xdsListener.Addr().(*net.TCPAddr).Port, controlListener.Addr().(*net.TCPAddr).Port)

	<-ctx.Done()
	_ = httpServer.Close()
	grpcServer.Stop()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gcp-server:", err)
	os.Exit(1)
}
