package cli

import (
	"fmt"
	"io"
	"sync"

	"github.com/lazylayer/lazylayer/convert"
	"github.com/opencontainers/go-digest"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// progress shows a conversion layer by layer: a bar per layer on a
// terminal, a line per finished layer elsewhere (none with --json, whose
// document lists them). It is safe for concurrent use, as
// convert.WithProgress requires.
type progress struct {
	mu     sync.Mutex
	lines  io.Writer // nil: no lines
	bars   *mpb.Progress
	layers map[layerKey]*layerState
	order  []layerKey
}

type layerKey struct {
	manifest digest.Digest
	index    int
}

type layerState struct {
	layerProgress
	bar *mpb.Bar
}

func (c *cli) newProgress() *progress {
	p := &progress{layers: make(map[layerKey]*layerState)}
	switch {
	case c.json:
	case isTerminal(c.stderr):
		p.bars = mpb.New(mpb.WithOutput(c.stderr), mpb.WithWidth(32))
	default:
		p.lines = c.stderr
	}
	return p
}

func (p *progress) report(u convert.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := layerKey{u.Manifest, u.Index}
	st := p.layers[k]
	if st == nil {
		st = &layerState{layerProgress: layerProgress{Manifest: u.Manifest.String(), Index: u.Index, Digest: u.Layer.Digest.String()}}
		p.layers[k] = st
		p.order = append(p.order, k)
		if p.bars != nil {
			name := fmt.Sprintf("layer %d %s", u.Index, short(u.Layer.Digest.String()))
			st.bar = p.bars.AddBar(u.Layer.Size,
				mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR)),
				mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace), decor.Percentage(decor.WCSyncSpace)))
		}
	}
	st.Read, st.Written, st.Reused, st.Note = u.Read, u.Written, u.Reused, u.Note
	if st.bar != nil {
		st.bar.SetCurrent(min(u.Read, u.Layer.Size))
		if u.Done {
			st.bar.SetTotal(-1, true)
		}
	}
	if u.Done && p.lines != nil {
		how := fmt.Sprintf("%s in, %s out", humanBytes(u.Read), humanBytes(u.Written))
		switch {
		case u.Note != "":
			how = u.Note
		case u.Reused:
			how = "already converted, kept"
		}
		fmt.Fprintf(p.lines, "layer %d %s: %s\n", u.Index, short(u.Layer.Digest.String()), how)
	}
}

// finish ends the bars (aborting those of layers that did not finish)
// and returns what every layer did, in the order they started.
func (p *progress) finish() []layerProgress {
	p.mu.Lock()
	out := make([]layerProgress, 0, len(p.order))
	for _, k := range p.order {
		st := p.layers[k]
		if st.bar != nil && !st.bar.Completed() {
			st.bar.Abort(false)
		}
		out = append(out, st.layerProgress)
	}
	p.mu.Unlock()
	if p.bars != nil {
		p.bars.Wait()
	}
	return out
}
