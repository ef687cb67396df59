// Command lazylayer-snapshotter is a containerd remote snapshotter that
// mounts seekable image layers lazily: see the README beside it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/contrib/snapshotservice"
	"github.com/lazylayer/lazylayer/examples/snapshotter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
)

// defaultMemoryLimit is the soft memory limit the snapshotter sets on the
// Go runtime unless told otherwise. Its live heap stays well under it
// (55-75 MB at the peak of a Go toolchain's start), but the collector,
// left to GOGC alone, lets the heap grow to twice the live bytes and
// returns freed pages slowly: peak RSS was 204-224 MiB. The limit makes
// it collect, and give memory back, before that.
const defaultMemoryLimit = 128 << 20

func main() {
	root := flag.String("root", "/var/lib/lazylayer-snapshotter", "the directory of the snapshots and the chunk cache")
	socket := flag.String("address", "/run/lazylayer-snapshotter/snapshotter.sock", "the unix socket to serve containerd's snapshots API on")
	metrics := flag.String("metrics-address", "", "serve Prometheus metrics at http://ADDRESS/metrics (host:port; empty: none)")
	cacheSize := flag.Int64("cache-size", snapshotter.DefaultCacheSize, "the most bytes the chunk cache may hold")
	memoryCacheSize := flag.Int64("memory-cache-size", snapshotter.DefaultMemoryCacheSize, "the most bytes of chunks kept in memory over the chunk cache")
	backgroundRate := flag.Int64("background-rate", snapshotter.DefaultBackgroundRate, "the most bytes per second the background fetch of whole layers asks for while the prefetch plans hold what containers read")
	insecure := flag.String("insecure", "", "comma-separated registries (host[:port]) to speak plain HTTP to; loopback ones always are")
	hostsDir := flag.String("hosts-dir", "/etc/containerd/certs.d", "the directory of containerd hosts.toml files naming registry mirrors")
	record := flag.String("record-dir", "", "write each image's access trace, for lazylayer optimize --trace, to DIR/MANIFEST-HEX.trace when its last layer is unmounted (empty: record nothing)")
	heapProfile := flag.String("heap-profile", "", "write a heap profile (go tool pprof) to FILE at each new peak of the live heap (empty: none)")
	cpuProfile := flag.String("cpu-profile", "", "write a CPU profile (go tool pprof) of the whole run to FILE when the snapshotter stops (empty: none)")
	memoryLimit := flag.Int64("memory-limit", defaultMemoryLimit, "the Go runtime's soft memory limit in bytes (runtime/debug.SetMemoryLimit; the GOMEMLIMIT environment variable, if set, wins; 0: none)")
	flag.Parse()
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && *memoryLimit > 0 {
		debug.SetMemoryLimit(*memoryLimit)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	if *heapProfile != "" {
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		go profilePeaks(ctx, *heapProfile, 50*time.Millisecond)
	}
	cfg := snapshotter.Config{
		Root: *root, CacheSize: *cacheSize, MemoryCacheSize: *memoryCacheSize, BackgroundRate: *backgroundRate, HostsDir: *hostsDir, RecordDir: *record,
	}
	if *insecure != "" {
		cfg.Insecure = strings.Split(*insecure, ",")
	}
	if err := run(cfg, *socket, *metrics); err != nil {
		pprof.StopCPUProfile() // log.Fatal skips the deferred stop
		log.Fatal(err)
	}
}

func run(cfg snapshotter.Config, socket, metricsAddr string) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Registerer = reg
	sn, err := snapshotter.New(cfg)
	if err != nil {
		return err
	}
	defer sn.Close()

	if err := os.MkdirAll(filepath.Dir(socket), 0o700); err != nil {
		return err
	}
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	server := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(server, snapshotservice.FromSnapshotter(sn))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 2)
	go func() { errc <- server.Serve(l) }()
	var hs *http.Server
	if metricsAddr != "" {
		ml, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			server.Stop()
			return fmt.Errorf("metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		hs = &http.Server{Handler: mux}
		go func() { errc <- hs.Serve(ml) }()
	}
	log.Printf("lazylayer-snapshotter: serving %s", socket)
	select {
	case <-ctx.Done():
		err = nil
	case err = <-errc:
	}
	server.Stop()
	if hs != nil {
		hs.Close()
	}
	return err
}
