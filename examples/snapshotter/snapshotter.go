package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/snapshotters"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay"
	"github.com/containerd/errdefs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/lazylayer/lazylayer/cache"
	"github.com/lazylayer/lazylayer/image"
	"github.com/lazylayer/lazylayer/internal/iox"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/registry"
	digest "github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
)

// Labels: the ones containerd's unpacker and snapshotters.AppendInfoHandlerWrapper
// give Prepare, and the ones this snapshotter keeps on the layers it
// mounts lazily, which tell it what to mount again after a restart.
const (
	labelTargetSnapshot = "containerd.io/snapshot.ref"
	labelUpperdir       = "containerd.io/snapshot/overlay.upperdir"
	labelImage          = "containerd.io/snapshot/lazylayer.image"
	labelLayer          = "containerd.io/snapshot/lazylayer.layer"
)

// DefaultCacheSize bounds the chunk cache unless Config.CacheSize says
// otherwise: 10 GiB.
const DefaultCacheSize = 10 << 30

// DefaultMemoryCacheSize bounds the memory tier of the chunk cache
// unless Config.MemoryCacheSize says otherwise: 32 MiB.
const DefaultMemoryCacheSize = 32 << 20

// openTimeout bounds opening an image and remounting a layer at start.
const openTimeout = 2 * time.Minute

// The background fetch of whole layers starts once no container has
// waited for the registry for backgroundQuiet: a starting container
// reads in bursts a few milliseconds apart, and every byte the
// background fetch puts on the link before the burst is over delays
// it. It then waits before each request until no on-demand or prefetch
// request is under way, and takes at most Config.BackgroundRate of the
// link: a container that no longer reads may still be starting, busy
// with the CPU the background fetch would take to decompress and
// verify. But once backgroundMisses on-demand requests followed the
// prefetch, the plan did not hold what the containers read, and
// fetching the layers whole at the link's speed beats reading file
// after file a round trip each: the background fetch then starts at
// once, and runs unpaced.
const (
	backgroundQuiet  = time.Second
	backgroundMisses = 16
)

// DefaultBackgroundRate paces the background fetch unless
// Config.BackgroundRate says otherwise: 8 MiB/s.
const DefaultBackgroundRate = 8 << 20

// Config configures New.
type Config struct {
	// Root holds the snapshots (containerd's overlayfs snapshotter's
	// layout) and the chunk cache, root/cache.
	Root string
	// CacheSize bounds the chunk cache in bytes; <= 0 means
	// DefaultCacheSize.
	CacheSize int64
	// MemoryCacheSize bounds, in bytes, the chunks kept in memory over
	// the directory cache: the ones most recently fetched or read, which
	// a starting container reads next, are served without reading and
	// hashing their file again; <= 0 means DefaultMemoryCacheSize.
	MemoryCacheSize int64
	// BackgroundRate is the most bytes per second the background fetch
	// of whole layers asks for while the prefetch plans hold what the
	// containers read (see backgroundMisses); <= 0 means
	// DefaultBackgroundRate.
	BackgroundRate int64
	// Insecure names registries (host[:port]) spoken to in plain HTTP;
	// loopback registries always are.
	Insecure []string
	// HostsDir is a directory of containerd hosts.toml files naming
	// mirrors; "" means none.
	HostsDir string
	// RecordDir, if not "", is where the snapshotter writes the access
	// trace of each image it mounts, MANIFEST-HEX.trace, when the last
	// of its layers is unmounted (at Remove or Close): the files the
	// containers read, in first-read order, as prefetch.WriteTrace
	// writes them, for lazylayer optimize --trace.
	RecordDir string
	// Registerer receives the metrics; nil means none are exported.
	Registerer prometheus.Registerer
	// Logf logs what goes wrong in the background; nil means log.Printf.
	Logf func(format string, args ...any)
}

// Snapshotter is containerd's overlayfs snapshotter, to which it adds
// layers mounted lazily: a Prepare that carries the image's reference
// and the layer's digest, of a seekable layer, commits the snapshot at
// once and mounts the layer through FUSE as its directory, so that
// containerd skips fetching and unpacking it. Any other layer is left
// to containerd, which unpacks it as usual.
type Snapshotter struct {
	snapshots.Snapshotter
	root     string
	record   string
	registry *registry.Client
	cache    *cache.Dir    // the chunks, on disk
	memory   *cache.Memory // the chunks last used, over cache
	chunks   *cache.Tiered // memory over cache, which the layers read
	metrics  *metrics
	demand   *demand
	logf     func(string, ...any)

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // background work

	mu      sync.Mutex
	images  map[string]*openImage    // by reference with digest
	mounts  map[string]*mounted      // by directory
	pending map[string]chan struct{} // committed, not yet mounted: see prepareLazy
}

// openImage is an image some mounted layers come from.
type openImage struct {
	ready    chan struct{} // closed once img or err is set
	img      *image.Image
	err      error
	layers   int // mounted layers using it
	prefetch sync.Once
	recorder *prefetch.Recorder // nil unless Config.RecordDir is set
}

type mounted struct {
	server *fuse.Server
	image  string
	layer  *reader.Layer
}

// New opens the snapshotter at cfg.Root and mounts again the layers it
// had mounted lazily before it was stopped.
func New(cfg Config) (*Snapshotter, error) {
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.MemoryCacheSize <= 0 {
		cfg.MemoryCacheSize = DefaultMemoryCacheSize
	}
	if cfg.BackgroundRate <= 0 {
		cfg.BackgroundRate = DefaultBackgroundRate
	}
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("snapshotter root: %w", err)
	}
	dir, err := cache.NewDir(filepath.Join(cfg.Root, "cache"), cfg.CacheSize)
	if err != nil {
		return nil, fmt.Errorf("chunk cache: %w", err)
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	memory := cache.NewMemory(cfg.MemoryCacheSize)
	chunks := cache.NewTiered(memory, dir)
	m := newMetrics(reg, chunks, memory, dir)
	d := newDemand(float64(cfg.BackgroundRate))
	rc, err := registry.New(
		registry.WithTransport(&transport{next: http.DefaultTransport, m: m, demand: d}),
		registry.WithInsecure(cfg.Insecure...),
		registry.WithHostsDir(cfg.HostsDir),
		registry.WithUserAgent("lazylayer-snapshotter"),
	)
	if err != nil {
		dir.Close()
		return nil, err
	}
	ov, err := overlay.NewSnapshotter(filepath.Join(cfg.Root, "snapshots"), overlay.WithUpperdirLabel)
	if err != nil {
		rc.Close()
		dir.Close()
		return nil, fmt.Errorf("overlay snapshotter at %s: %w", cfg.Root, err)
	}
	s := &Snapshotter{
		Snapshotter: ov, root: cfg.Root, record: cfg.RecordDir, registry: rc, cache: dir, memory: memory, chunks: chunks, metrics: m, demand: d, logf: cfg.Logf,
		images: map[string]*openImage{}, mounts: map[string]*mounted{}, pending: map[string]chan struct{}{},
	}
	if s.logf == nil {
		s.logf = log.Printf
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.restore(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// restore mounts again every layer a previous run mounted lazily,
// detaching first what a killed run left mounted there.
func (s *Snapshotter) restore() error {
	ctx, cancel := context.WithTimeout(s.ctx, openTimeout)
	defer cancel()
	var todo []snapshots.Info
	err := s.Snapshotter.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindCommitted && info.Labels[labelLayer] != "" {
			todo = append(todo, info)
		}
		return nil
	})
	if err != nil && !errdefs.IsNotFound(err) { // a new root has no snapshots yet
		return fmt.Errorf("list snapshots: %w", err)
	}
	for _, info := range todo {
		dir := info.Labels[labelUpperdir]
		detach(dir)
		if err := s.mount(ctx, info.Labels[labelImage], info.Labels[labelLayer], dir); err != nil {
			s.logf("lazylayer: snapshot %s: mount again: %v", info.Name, err)
		}
	}
	return nil
}

// detach lazily unmounts whatever is mounted at dir, if anything.
func detach(dir string) {
	syscall.Unmount(dir, syscall.MNT_DETACH)
}

// Prepare mounts the layer lazily if the labels name a seekable layer of
// an image (see Snapshotter), and otherwise prepares a snapshot as
// containerd's overlayfs snapshotter does.
func (s *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	var info snapshots.Info
	for _, o := range opts {
		if err := o(&info); err != nil {
			return nil, err
		}
	}
	target := info.Labels[labelTargetSnapshot]
	ref := info.Labels[snapshotters.TargetRefLabel]
	layer := info.Labels[snapshotters.TargetLayerDigestLabel]
	manifest := info.Labels[snapshotters.TargetManifestDigestLabel]
	if target != "" && ref != "" && layer != "" && manifest != "" {
		name, _, _ := strings.Cut(ref, "@")
		err := s.prepareLazy(ctx, key, parent, target, name+"@"+manifest, layer, info.Labels, opts)
		if err == nil {
			return nil, fmt.Errorf("layer %s of %s mounted lazily as %s: %w", layer, ref, target, errdefs.ErrAlreadyExists)
		}
		if !errors.Is(err, image.ErrNotSeekable) {
			s.logf("lazylayer: layer %s of %s: %v; unpacking it instead", layer, ref, err)
		}
	}
	if err := s.settled(ctx, parent); err != nil {
		return nil, err
	}
	return s.Snapshotter.Prepare(ctx, key, parent, opts...)
}

// prepareLazy mounts layer of the image ref as the committed snapshot
// target, going through the active snapshot key as containerd would.
//
// It commits the snapshot before it mounts the layer in its directory:
// containerd's overlayfs snapshotter measures a snapshot's disk use at
// Commit by walking its directory, which through FUSE would list the
// whole layer while the pull waits (85 ms of a Python start's pull; the
// layer takes no disk space but its cached chunks anyway). Until the
// layer is mounted, target is pending: whoever asks for it (Stat, or a
// Prepare or View on it) waits.
func (s *Snapshotter) prepareLazy(ctx context.Context, key, parent, target, ref, layer string, labels map[string]string, opts []snapshots.Opt) error {
	done, err := s.claim(ctx, target)
	if err != nil || done == nil {
		return err // nil: a concurrent Prepare mounted it
	}
	defer done()
	oi, l, err := s.lazyLayer(ctx, ref, layer)
	if err != nil {
		return err
	}
	if _, err := s.Snapshotter.Prepare(ctx, key, parent, opts...); err != nil {
		s.release(ref)
		return err
	}
	st, err := s.Snapshotter.Stat(ctx, key)
	if err != nil {
		s.Snapshotter.Remove(ctx, key)
		s.release(ref)
		return err
	}
	committed := map[string]string{labelImage: ref, labelLayer: layer}
	for k, v := range labels {
		committed[k] = v
	}
	if err := s.Snapshotter.Commit(ctx, target, key, snapshots.WithLabels(committed)); err != nil {
		s.Snapshotter.Remove(ctx, key)
		s.release(ref)
		if errdefs.IsAlreadyExists(err) {
			return nil // unpacked meanwhile by containerd
		}
		return fmt.Errorf("commit %s: %w", target, err)
	}
	if err := s.mountAt(oi, ref, layer, l, st.Labels[labelUpperdir]); err != nil {
		s.Snapshotter.Remove(ctx, target)
		return err
	}
	return nil
}

// claim marks the snapshot name pending until the returned done is
// called. If another Prepare holds name, claim waits for it and returns
// a nil done if name exists then.
func (s *Snapshotter) claim(ctx context.Context, name string) (done func(), err error) {
	for {
		s.mu.Lock()
		wait, busy := s.pending[name]
		if !busy {
			ch := make(chan struct{})
			s.pending[name] = ch
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.pending, name)
				s.mu.Unlock()
				close(ch)
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if _, err := s.Snapshotter.Stat(ctx, name); err == nil {
			return nil, nil
		}
	}
}

// settled waits until the snapshot name is not pending (see prepareLazy).
func (s *Snapshotter) settled(ctx context.Context, name string) error {
	s.mu.Lock()
	wait, busy := s.pending[name]
	s.mu.Unlock()
	if !busy {
		return nil
	}
	select {
	case <-wait:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stat is the overlayfs snapshotter's, once key is not pending.
func (s *Snapshotter) Stat(ctx context.Context, key string) (snapshots.Info, error) {
	if err := s.settled(ctx, key); err != nil {
		return snapshots.Info{}, err
	}
	return s.Snapshotter.Stat(ctx, key)
}

// View is the overlayfs snapshotter's, once parent is not pending.
func (s *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	if err := s.settled(ctx, parent); err != nil {
		return nil, err
	}
	return s.Snapshotter.View(ctx, key, parent, opts...)
}

// mount mounts layer of image ref at dir, opening the image if no layer
// of it is mounted yet, and starts the image's prefetch.
func (s *Snapshotter) mount(ctx context.Context, ref, layer, dir string) error {
	oi, l, err := s.lazyLayer(ctx, ref, layer)
	if err != nil {
		return err
	}
	return s.mountAt(oi, ref, layer, l, dir)
}

// lazyLayer opens the image ref, or takes it open, counting one more
// layer that uses it, and returns its layer of that digest. The caller
// releases ref if it does not mount the layer.
func (s *Snapshotter) lazyLayer(ctx context.Context, ref, layer string) (*openImage, *reader.Layer, error) {
	oi, err := s.openImage(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	for _, il := range oi.img.Layers() {
		if il.Descriptor.Digest.String() == layer {
			if il.Err != nil {
				err = il.Err
				continue
			}
			return oi, il.Layer, nil
		}
	}
	if err == nil {
		err = fmt.Errorf("image %s has no layer %s", ref, layer)
	}
	s.release(ref)
	return nil, nil, err
}

// mountAt mounts l, the layer of digest layer of the open image oi
// (ref), at dir and starts the image's prefetch. It releases ref if it
// fails.
func (s *Snapshotter) mountAt(oi *openImage, ref, layer string, l *reader.Layer, dir string) error {
	if dir == "" {
		s.release(ref)
		return fmt.Errorf("layer %s: no snapshot directory", layer)
	}
	start := time.Now()
	server, err := mountLayer(dir, l, layer)
	if err != nil {
		s.release(ref)
		return err
	}
	s.metrics.mountTime.Observe(time.Since(start).Seconds())
	s.mu.Lock()
	s.mounts[dir] = &mounted{server: server, image: ref, layer: l}
	s.mu.Unlock()
	s.metrics.mounts.Inc()
	oi.prefetch.Do(func() { s.startPrefetch(ref, oi.img) })
	return nil
}

// openImage opens ref, or takes the image already open, counting one
// more layer that uses it.
func (s *Snapshotter) openImage(ctx context.Context, ref string) (*openImage, error) {
	s.mu.Lock()
	oi := s.images[ref]
	if oi == nil {
		oi = &openImage{ready: make(chan struct{})}
		if s.record != "" {
			oi.recorder = new(prefetch.Recorder)
		}
		s.images[ref] = oi
		s.mu.Unlock()
		oi.img, oi.err = s.open(ref, oi.recorder)
		close(oi.ready)
		s.mu.Lock()
	}
	oi.layers++
	s.mu.Unlock()
	select {
	case <-oi.ready:
	case <-ctx.Done():
		s.release(ref)
		return nil, ctx.Err()
	}
	if oi.err != nil {
		s.release(ref)
		return nil, oi.err
	}
	return oi, nil
}

// open opens the image ref, reporting the first read of each chunk to
// the metrics and to rec, if not nil.
func (s *Snapshotter) open(ref string, rec *prefetch.Recorder) (*image.Image, error) {
	src, err := image.ParseReference(ref, s.registry)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, openTimeout)
	defer cancel()
	observe := s.metrics.observeAccess
	if rec != nil {
		observe = func(a reader.Access) {
			s.metrics.observeAccess(a)
			rec.Observe(a)
		}
	}
	start := time.Now()
	img, err := image.Open(ctx, src, image.WithReaderOptions(
		reader.WithCache(s.chunks),
		reader.WithAccessObserver(observe),
	))
	if err != nil {
		return nil, fmt.Errorf("open image %s: %w", ref, err)
	}
	s.metrics.openTime.Observe(time.Since(start).Seconds())
	return img, nil
}

// writeTrace writes what rec recorded of the image ref into the record
// directory.
func (s *Snapshotter) writeTrace(ref string, rec *prefetch.Recorder) error {
	_, dgst, _ := strings.Cut(ref, "@")
	d, err := digest.Parse(dgst)
	if err != nil {
		return fmt.Errorf("trace of %s: %w", ref, err)
	}
	if err := os.MkdirAll(s.record, 0o700); err != nil {
		return err
	}
	path := filepath.Join(s.record, d.Encoded()+".trace")
	if err := iox.ReplaceFile(path, func(w io.Writer) error { return prefetch.WriteTrace(w, rec.Trace()) }); err != nil {
		return fmt.Errorf("trace of %s: %w", ref, err)
	}
	return nil
}

// release drops one use of the image ref, closing it after the last.
func (s *Snapshotter) release(ref string) {
	s.mu.Lock()
	oi := s.images[ref]
	if oi == nil {
		s.mu.Unlock()
		return
	}
	oi.layers--
	last := oi.layers == 0
	if last {
		delete(s.images, ref)
	}
	s.mu.Unlock()
	if last {
		<-oi.ready
		if oi.img != nil {
			oi.img.Close()
		}
		if oi.recorder != nil && oi.err == nil {
			if err := s.writeTrace(ref, oi.recorder); err != nil {
				s.logf("lazylayer: %v", err)
			}
		}
	}
}

// startPrefetch fetches the image's prefetch plan into the cache across
// its layers, then the rest of every layer in the background.
func (s *Snapshotter) startPrefetch(ref string, img *image.Image) {
	s.metrics.pending.Add(float64(len(img.Layers())))
	s.wg.Go(func() {
		ctx := withCause(s.ctx, causePrefetch)
		start := time.Now()
		if exec, err := img.Prefetch(ctx, s.metrics.prefetchProgress()); err != nil {
			s.logf("lazylayer: prefetch %s: %v", ref, err)
		} else if err := exec.Wait(); err != nil && s.ctx.Err() == nil {
			s.logf("lazylayer: prefetch %s: %v", ref, err)
		} else {
			s.metrics.prefetchTime.Observe(time.Since(start).Seconds())
		}
		// One layer at a time, once the containers starting are not
		// waiting for the registry, paced, and yielding to them: the
		// background fetch gets what bandwidth they leave.
		ctx = withCause(s.ctx, causeBackground)
		since, from := time.Now(), s.demand.count()
		gate := reader.WithFetchGate(func(ctx context.Context, size int64) error {
			return s.demand.admit(ctx, size, from, backgroundMisses)
		})
		for _, l := range img.Layers() {
			if l.Layer != nil && !l.Whole && s.demand.waitQuiet(ctx, since, backgroundQuiet, from, backgroundMisses) == nil {
				if err := l.Layer.FetchAll(ctx, gate); err != nil && s.ctx.Err() == nil && !errors.Is(err, os.ErrClosed) {
					s.logf("lazylayer: background fetch of %s in %s: %v", l.Descriptor.Digest, ref, err)
				}
			}
			s.metrics.pending.Dec()
		}
	})
}

// unmount unmounts the layer mounted at dir and releases its image. If
// drop is set, the layer is gone for good: unless another mount shows it
// too, it is closed, and its chunks that no other mounted layer has are
// removed from the cache.
func (s *Snapshotter) unmount(dir string, drop bool) {
	s.mu.Lock()
	m := s.mounts[dir]
	delete(s.mounts, dir)
	if m == nil {
		s.mu.Unlock()
		return
	}
	var others []*reader.Layer
	shown := false
	for _, o := range s.mounts {
		others = append(others, o.layer)
		shown = shown || o.layer == m.layer
	}
	s.mu.Unlock()
	if err := m.server.Unmount(); err != nil {
		detach(dir) // busy: let the kernel finish it when unused
	}
	m.server.Wait()
	s.metrics.mounts.Dec()
	if drop && !shown {
		// Closed, it adds nothing more to the cache (its background
		// fetch stops), so what is removed stays removed.
		m.layer.Close()
		s.dropChunks(m.layer, others)
	}
	s.release(m.image)
}

// dropChunks removes from the cache the chunks of l that none of others
// has. A chunk a layer mounted later shares is fetched again if read.
func (s *Snapshotter) dropChunks(l *reader.Layer, others []*reader.Layer) {
	keep := map[digest.Digest]bool{}
	for _, o := range others {
		for _, k := range o.CacheKeys() {
			keep[k] = true
		}
	}
	for _, k := range l.CacheKeys() {
		if !keep[k] {
			s.memory.Remove(k)
			if err := s.cache.Remove(k); err != nil {
				s.logf("lazylayer: %v", err)
			}
		}
	}
}

// Remove unmounts a lazily mounted layer before removing its snapshot.
func (s *Snapshotter) Remove(ctx context.Context, key string) error {
	info, err := s.Snapshotter.Stat(ctx, key)
	if err == nil && info.Labels[labelLayer] != "" {
		children := false
		err := s.Snapshotter.Walk(ctx, func(context.Context, snapshots.Info) error {
			children = true
			return nil
		}, fmt.Sprintf("parent==%q", key))
		if err != nil {
			return fmt.Errorf("remove %s: %w", key, err)
		}
		if children {
			return fmt.Errorf("remove %s: snapshot has children: %w", key, errdefs.ErrFailedPrecondition)
		}
		s.unmount(info.Labels[labelUpperdir], true)
	}
	return s.Snapshotter.Remove(ctx, key)
}

// Close unmounts every layer, stops what is being fetched and waits for
// it, and closes the snapshots' metadata.
func (s *Snapshotter) Close() error {
	s.cancel()
	s.mu.Lock()
	dirs := make([]string, 0, len(s.mounts))
	for dir := range s.mounts {
		dirs = append(dirs, dir)
	}
	s.mu.Unlock()
	for _, dir := range dirs {
		s.unmount(dir, false)
	}
	s.wg.Wait()
	return errors.Join(s.Snapshotter.Close(), s.registry.Close(), s.cache.Close())
}
