package prefetch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"

	"github.com/lazylayer/lazylayer/reader"
	"github.com/lazylayer/lazylayer/toc"
)

// Progress reports how far Run has come, summed over the layers: the
// fields mean what they mean for one layer's prefetch. Totals grow as
// each layer works out what it needs.
type Progress = reader.PrefetchProgress

// A RunOption configures Run.
type RunOption func(*runConfig)

type runConfig struct {
	layerOpts []reader.PrefetchOption // for every layer's prefetch
	progress  func(Progress)
}

// WithRequests bounds the requests Run keeps in flight for each layer;
// the default is reader.DefaultPrefetchRequests.
func WithRequests(n int) RunOption {
	return func(c *runConfig) { c.layerOpts = append(c.layerOpts, reader.WithPrefetchRequests(n)) }
}

// WithWorkers bounds how many frames each layer decompresses and
// verifies at once; the default is GOMAXPROCS.
func WithWorkers(n int) RunOption {
	return func(c *runConfig) { c.layerOpts = append(c.layerOpts, reader.WithPrefetchWorkers(n)) }
}

// WithProgress makes Run call fn as frames arrive, decompressed, verified
// and cached. Calls do not overlap.
func WithProgress(fn func(Progress)) RunOption {
	return func(c *runConfig) { c.progress = fn }
}

// Run is Start followed by Execution.Wait.
func Run(ctx context.Context, plan *Plan, layers []*reader.Layer, opts ...RunOption) error {
	e, err := Start(ctx, plan, layers, opts...)
	if err != nil {
		return err
	}
	return e.Wait()
}

// An Execution is a plan being fetched; see Start.
type Execution struct {
	done chan struct{}
	err  error
}

// Wait waits until everything the plan needs is cached, and returns nil,
// or returns the first error.
func (e *Execution) Wait() error {
	<-e.done
	return e.err
}

// Start starts fetching what plan needs into the caches of layers, where
// an item's Layer indexes layers. Within a layer, chunks are fetched in
// plan order (by priority), merged into few requests, and decompressed
// and verified on all cores as answers arrive; layers are fetched
// concurrently. Start returns once every layer has claimed the chunks it
// will fetch: from then on a read of such a chunk waits for the
// prefetch's fetch instead of making its own, and a read of a chunk
// already cached is served at once. Cancelling ctx stops the execution.
//
// Items naming files a layer does not hold, or that are not regular
// files there, are skipped: a plan may be older than the image. Items of
// layers beyond len(layers), or of a nil layer, are skipped too. Every
// layer must have been opened with reader.WithCache.
func Start(ctx context.Context, plan *Plan, layers []*reader.Layer, opts ...RunOption) (*Execution, error) {
	var cfg runConfig
	for _, o := range opts {
		o(&cfg)
	}
	chunks, err := plan.Chunks(func(layer int, name string) (*toc.Entry, error) {
		if layer >= len(layers) || layers[layer] == nil {
			return nil, nil
		}
		e, err := layers[layer].ContentEntry(name)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
			return nil, nil
		}
		return e, err
	})
	if err != nil {
		return nil, err
	}
	// Chunks come in plan order, so each layer's ranges keep it.
	perLayer := make(map[int][]reader.FileRange)
	var order []int
	for _, c := range chunks {
		if perLayer[c.Layer] == nil {
			order = append(order, c.Layer)
		}
		perLayer[c.Layer] = append(perLayer[c.Layer], reader.FileRange{Name: c.Path, Offset: c.Chunk.Offset, Length: c.Chunk.Size})
	}

	var mu sync.Mutex
	latest := make(map[int]reader.PrefetchProgress, len(perLayer))
	report := func(layer int, p reader.PrefetchProgress) {
		mu.Lock()
		defer mu.Unlock()
		latest[layer] = p
		var sum Progress
		for _, lp := range latest {
			sum.Frames += lp.Frames
			sum.FramesDone += lp.FramesDone
			sum.Bytes += lp.Bytes
			sum.BytesDone += lp.BytesDone
			sum.Busy += lp.Busy
		}
		cfg.progress(sum)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	var started []*reader.Prefetching
	for _, layer := range order {
		popts := slices.Clip(cfg.layerOpts)
		if cfg.progress != nil {
			popts = append(popts, reader.WithPrefetchProgress(func(p reader.PrefetchProgress) { report(layer, p) }))
		}
		p, err := layers[layer].StartPrefetch(ctx, perLayer[layer], popts...)
		if err != nil {
			err = fmt.Errorf("prefetch: layer %d: %w", layer, err)
			cancel(err)
			for _, p := range started {
				p.Wait()
			}
			return nil, err
		}
		started = append(started, p)
	}
	e := &Execution{done: make(chan struct{})}
	go func() {
		defer close(e.done)
		defer cancel(nil)
		for i, p := range started {
			if err := p.Wait(); err != nil && e.err == nil {
				e.err = fmt.Errorf("prefetch: layer %d: %w", order[i], err)
				cancel(e.err)
			}
		}
	}()
	return e, nil
}
