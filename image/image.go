package image

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"slices"
	"sync"

	"github.com/lazylayer/lazylayer/internal/ocidoc"
	"github.com/lazylayer/lazylayer/overlay"
	"github.com/lazylayer/lazylayer/prefetch"
	"github.com/lazylayer/lazylayer/reader"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is an image opened lazily: its manifest, its config, and its
// layers, each a reader.Layer that fetches file contents as they are
// read. An Image is safe for concurrent use; Close releases it.
type Image struct {
	root, manifestDesc ocispec.Descriptor
	manifest           ocispec.Manifest
	config             ocispec.Image
	layers             []Layer
	src                Source
	cfg                config

	mu         sync.Mutex
	closed     bool
	executions []*prefetch.Execution
}

// Open opens the image src resolves to. It fetches the manifest or
// index src.Resolve names, follows indexes to the manifest of the wanted
// platform (WithPlatform), then fetches the config and opens every layer
// at once, each by the format its media type and annotations declare
// (see the package documentation). Every manifest, index and config is
// checked against the size and digest of the descriptor that names it.
//
// Open fails if the image's manifests or config fail; a layer that
// cannot be opened fails alone, with an error its Layer entry holds and
// Image.Err joins, so that a caller can tell which layers are seekable.
// ctx bounds Open only: reads of the layers run until Close.
func Open(ctx context.Context, src Source, opts ...Option) (*Image, error) {
	cfg := newConfig(opts)
	root, err := src.Resolve(ctx)
	if err != nil {
		return nil, fmt.Errorf("image: resolve: %w", err)
	}
	// The SOCI index an image index lists with the manifest comes with
	// the manifest, in the same round trip.
	var early *sociFetch
	var peers []ocispec.Descriptor
	mdesc, m, err := selectManifest(ctx, src, root, &cfg, func(chosen ocispec.Descriptor, entries []ocispec.Descriptor) {
		peers = entries
		if e, ok := sociEntry(chosen, entries); ok && !cfg.noSOCI {
			early = startSOCIFetch(ctx, src, e, &cfg)
		}
	})
	if early != nil {
		defer early.wait()
	}
	if err != nil {
		return nil, err
	}
	img := &Image{root: root, manifestDesc: mdesc, manifest: m, layers: make([]Layer, len(m.Layers)), src: src, cfg: cfg}

	// The config and every layer's index come in parallel: one round
	// trip for all of them, but for the layers a SOCI index serves,
	// whose zTOCs come once the index is there.
	var wg sync.WaitGroup
	var configData []byte
	var configErr error
	wg.Go(func() { configData, configErr = fetchConfig(ctx, src, m.Config, &cfg) })
	finder := newSOCIFinder(src, mdesc, &img.manifest, early, peers, &cfg)
	if finder != nil {
		wg.Go(func() { finder.run(ctx) })
	}
	slots := make(chan struct{}, cfg.parallelism)
	whole := make(chan struct{}, maxWholeAtOnce)
	for i, desc := range m.Layers {
		wg.Go(func() {
			found := finder.layer(ctx, i)
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				img.layers[i] = Layer{Descriptor: desc, Err: fmt.Errorf("image: layer %d (%s): %w", i, desc.Digest, ctx.Err())}
				return
			}
			defer func() { <-slots }()
			img.layers[i] = openLayer(ctx, src, i, desc, &cfg, whole, found)
		})
	}
	wg.Wait()
	if configErr == nil {
		configErr = img.parseConfig(configData)
	}
	if configErr != nil {
		img.Close()
		return nil, configErr
	}
	return img, nil
}

// parseConfig parses the config and checks that it describes as many
// layers as the manifest has.
func (img *Image) parseConfig(data []byte) error {
	c, err := ocidoc.ParseConfig(data, len(img.layers))
	if err != nil {
		return fmt.Errorf("image: config %s: %w", img.manifest.Config.Digest, err)
	}
	img.config = *c
	return nil
}

// Root returns the descriptor the source resolved to: the image index,
// or the manifest if there was no index.
func (img *Image) Root() ocispec.Descriptor { return img.root }

// ManifestDescriptor returns the descriptor of the image manifest, the
// one of the wanted platform if Root is an index.
func (img *Image) ManifestDescriptor() ocispec.Descriptor { return img.manifestDesc }

// Manifest returns the image manifest. The caller must not modify it.
func (img *Image) Manifest() ocispec.Manifest { return img.manifest }

// ConfigDescriptor returns the descriptor of the image config.
func (img *Image) ConfigDescriptor() ocispec.Descriptor { return img.manifest.Config }

// Config returns the image config. The caller must not modify it.
func (img *Image) Config() ocispec.Image { return img.config }

// Layers returns the image's layers, lowest first.
func (img *Image) Layers() []Layer { return slices.Clone(img.layers) }

// Err returns the errors of the layers that could not be opened, joined,
// or nil if every layer is open.
func (img *Image) Err() error {
	var errs []error
	for _, l := range img.layers {
		errs = append(errs, l.Err)
	}
	return errors.Join(errs...)
}

// FS returns the image's root file system: its layers stacked as an
// OCI runtime stacks them (see package overlay). It fails with Err if a
// layer could not be opened, since the view would lack what that layer
// adds and show what it deletes.
func (img *Image) FS() (*overlay.FS, error) {
	if err := img.Err(); err != nil {
		return nil, err
	}
	layers := make([]iofs.FS, len(img.layers))
	for i, l := range img.layers {
		layers[i] = l.Layer
	}
	return overlay.New(layers...), nil
}

// Plan returns the prefetch plan the image carries, the plans of three
// sources merged in this order:
//
//   - the files before each eStargz layer's landmark (prefetch.FromLandmark),
//     and the bytes of the files in the spans of each SOCI prefetch
//     artifact (ReasonSOCIPrefetch);
//   - the patterns annotation (prefetch.AnnotationPatterns) of the
//     manifest and of each layer, resolved in the merged file system;
//   - the plan prefetch.FromImageConfig makes from the config's
//     entrypoint, command and environment.
//
// Like the planners it calls, Plan returns what it could plan along with
// the joined errors of what it could not (a malformed annotation, a
// program the image lacks); only a context error, or a layer that is not
// open (see FS), stops it.
func (img *Image) Plan(ctx context.Context, opts ...prefetch.Option) (*prefetch.Plan, error) {
	carried, err := img.carriedPlan(ctx, opts...)
	if carried == nil || ctx.Err() != nil {
		return carried, err
	}
	config, cerr := img.configPlan(ctx, opts...)
	return prefetch.Merge(carried, config), errors.Join(err, cerr)
}

// carriedPlan returns the plans the image carries: its layers' landmarks
// and the patterns annotations. Making it reads no file content.
func (img *Image) carriedPlan(ctx context.Context, opts ...prefetch.Option) (*prefetch.Plan, error) {
	root, err := img.FS()
	if err != nil {
		return nil, err
	}
	var plans []*prefetch.Plan
	var errs []error
	for i, l := range img.layers {
		plans = append(plans, prefetch.FromLandmark(i, l.Layer.TOC()))
		if l.soci != nil {
			p, err := l.soci.plan(i, img.cfg.sociOpts)
			plans = append(plans, p)
			if err != nil {
				errs = append(errs, fmt.Errorf("image: layer %d (%s): %w", i, l.Descriptor.Digest, err))
			}
		}
	}
	patterns := func(where string, annotations map[string]string) error {
		s, ok := annotations[prefetch.AnnotationPatterns]
		if !ok {
			return nil
		}
		ps, err := prefetch.ParsePatterns(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("image: %s: %w", where, err))
			return nil
		}
		p, err := prefetch.FromPatterns(ctx, root, ps, opts...)
		plans = append(plans, p)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			errs = append(errs, fmt.Errorf("image: %s: %w", where, err))
		}
		return nil
	}
	if err := patterns("manifest "+string(img.manifestDesc.Digest), img.manifest.Annotations); err != nil {
		return prefetch.Merge(plans...), err
	}
	for i, l := range img.layers {
		if err := patterns(fmt.Sprintf("layer %d (%s)", i, l.Descriptor.Digest), l.Descriptor.Annotations); err != nil {
			return prefetch.Merge(plans...), err
		}
	}
	return prefetch.Merge(plans...), errors.Join(errs...)
}

// configPlan returns the plan prefetch.FromImageConfig makes from the
// config. It reads the files it analyses (ELF headers, #! lines, sources
// of imported modules), so on a lazy image it waits for the registry.
func (img *Image) configPlan(ctx context.Context, opts ...prefetch.Option) (*prefetch.Plan, error) {
	root, err := img.FS()
	if err != nil {
		return nil, err
	}
	p, err := prefetch.FromImageConfig(ctx, root, img.config.Config, opts...)
	if err != nil {
		if ctx.Err() != nil {
			return p, ctx.Err()
		}
		err = fmt.Errorf("image: config %s: %w", img.manifest.Config.Digest, err)
	}
	return p, err
}

// Prefetch starts fetching the image's prefetch plan into the layers'
// caches, across all layers at once (see prefetch.Start): every layer must
// have been opened with a cache (WithReaderOptions(reader.WithCache(c))).
//
// The plan is the one the image carries, its landmarks, SOCI prefetch
// artifacts and patterns annotations, which whoever converted it made
// from its config or from a recorded run. Only an image that carries none
// is planned from its config (the last of Plan's sources), before
// Prefetch returns: that analysis reads files of the image over the
// network (for a Python program, the source of every module it imports),
// so on an image that carries its plan it would delay the start to choose
// files the plan has chosen. What could not be planned does not stop the
// prefetch; call Plan for those errors. Layers fetched whole are not
// prefetched: they are local. Close stops the prefetch and waits for it.
func (img *Image) Prefetch(ctx context.Context, opts ...prefetch.RunOption) (*prefetch.Execution, error) {
	plan, err := img.carriedPlan(ctx)
	if plan == nil || ctx.Err() != nil {
		return nil, err
	}
	if len(plan.Items()) == 0 {
		plan, _ = img.configPlan(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return img.PrefetchPlan(ctx, plan, opts...)
}

// PrefetchPlan starts fetching plan, a plan over this image's layers
// (its items name layers by index, as overlay.FS locations do), into the
// caches of the layers that are read lazily, across all of them at once
// (see prefetch.Start); layers fetched whole are local and skipped. Close
// stops it and waits for it.
func (img *Image) PrefetchPlan(ctx context.Context, plan *prefetch.Plan, opts ...prefetch.RunOption) (*prefetch.Execution, error) {
	layers := make([]*reader.Layer, len(img.layers))
	for i, l := range img.layers {
		if !l.Whole {
			layers[i] = l.Layer
		}
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	if img.closed {
		return nil, fmt.Errorf("image: prefetch: %w", errClosed)
	}
	e, err := prefetch.Start(ctx, plan, layers, opts...)
	if err != nil {
		return nil, err
	}
	img.executions = append(img.executions, e)
	return e, nil
}

var errClosed = errors.New("image closed")

// Close closes every layer, which stops what they fetch, waits for the
// prefetches Prefetch started, and removes the local copies of layers
// fetched whole.
func (img *Image) Close() error {
	img.mu.Lock()
	if img.closed {
		img.mu.Unlock()
		return nil
	}
	img.closed = true
	executions := img.executions
	img.executions = nil
	img.mu.Unlock()
	for _, l := range img.layers {
		if l.Layer != nil {
			l.Layer.Close()
		}
	}
	for _, e := range executions {
		e.Wait()
	}
	for _, l := range img.layers {
		if l.file != nil {
			removeFile(l.file)
		}
	}
	return nil
}
