package prefetch

import (
	"errors"
	"testing"

	"github.com/lazylayer/lazylayer/toc"
	"github.com/stretchr/testify/require"
)

func TestPlanAddNormalisesAndDeduplicates(t *testing.T) {
	var p Plan
	require.True(t, p.Add(Item{Path: "/usr/bin/sh", Priority: 5, Reason: ReasonTrace}))
	require.True(t, p.Add(Item{Path: "./usr//bin/sh", Priority: 2, Reason: ReasonEntrypoint}))
	require.True(t, p.Add(Item{Path: "usr/bin/sh", Priority: 9, Reason: ReasonRuntime}))
	require.True(t, p.Add(Item{Path: "etc/passwd", Layer: 1, Priority: 2}))
	require.False(t, p.Add(Item{Path: "/"}))
	require.False(t, p.Add(Item{Path: "a\x00b"}))
	require.False(t, p.Add(Item{Path: "x", Offset: -1, Length: 3}))
	require.False(t, p.Add(Item{Path: "x", Layer: -1}))
	require.Equal(t, []Item{
		{Path: "usr/bin/sh", Priority: 2, Reason: ReasonEntrypoint},
		{Layer: 1, Path: "etc/passwd", Priority: 2},
	}, p.Items())
}

func TestPlanRangesAndWholeFiles(t *testing.T) {
	var p Plan
	p.Add(Item{Path: "big", Offset: 100, Length: 10, Priority: 0})
	p.Add(Item{Path: "big", Priority: 1})
	p.Add(Item{Path: "big", Offset: 4096, Length: 10, Priority: 2}) // covered by the whole file
	p.Add(Item{Path: "big", Offset: 5, Length: 0, Priority: 3})     // whole file again
	p.Add(Item{Path: "other", Offset: 0, Length: 100, Priority: 0})
	p.Add(Item{Path: "other", Offset: 10, Length: 20, Priority: 1}) // inside the first range
	require.Equal(t, []Item{
		{Path: "big", Offset: 100, Length: 10, Priority: 0},
		{Path: "other", Offset: 0, Length: 100, Priority: 0},
		{Path: "big", Priority: 1},
	}, p.Items())
}

func TestMerge(t *testing.T) {
	var a, b Plan
	a.Add(Item{Path: "a0", Priority: 0, Reason: "a"})
	a.Add(Item{Path: "shared", Priority: 3, Reason: "a"})
	b.Add(Item{Path: "b0", Priority: 0, Reason: "b"})
	b.Add(Item{Path: "shared", Priority: 1, Reason: "b"})
	m := Merge(&a, nil, &b)
	require.Equal(t, []string{"a0", "b0", "shared"}, m.Paths(-1))
	require.Equal(t, Reason("b"), m.Items()[2].Reason, "the earliest priority wins")
	require.Equal(t, 2, a.Len(), "inputs are not modified")
	require.Zero(t, Merge().Len())
}

func TestChunks(t *testing.T) {
	chunk := func(off, size int64) toc.Chunk {
		return toc.Chunk{Offset: off, Size: size, FrameOffset: 1000 + off, FrameEnd: 1000 + off + size}
	}
	entries := map[string]*toc.Entry{
		"a": {Name: "a", Type: toc.TypeReg, Size: 30, Chunks: []toc.Chunk{chunk(0, 10), chunk(10, 10), chunk(20, 10)}},
		"z": {Name: "z", Type: toc.TypeReg, Size: 10, Chunks: []toc.Chunk{{Size: 10, Zeros: true}}},
	}
	lookup := func(layer int, name string) (*toc.Entry, error) {
		if e, ok := entries[name]; ok {
			return e, nil
		}
		return nil, errors.New("no such entry")
	}
	var p Plan
	p.Add(Item{Path: "a", Offset: 12, Length: 10, Priority: 0}) // chunks 1 and 2
	p.Add(Item{Path: "z", Priority: 1})
	p.Add(Item{Path: "a", Priority: 2}) // adds chunk 0 only
	refs, err := p.Chunks(lookup)
	require.NoError(t, err)
	var offsets []int64
	for _, r := range refs {
		offsets = append(offsets, r.Chunk.Offset)
	}
	require.Equal(t, []int64{10, 20, 0}, offsets)
	require.Equal(t, 2, refs[2].Priority)

	p.Add(Item{Path: "missing"})
	_, err = p.Chunks(lookup)
	require.ErrorContains(t, err, `"missing"`)
}

func TestFromLandmark(t *testing.T) {
	reg := func(name string) *toc.Entry { return &toc.Entry{Name: name, Type: toc.TypeReg} }
	withLandmark := &toc.TOC{Entries: []*toc.Entry{
		{Name: "usr", Type: toc.TypeDir}, reg("usr/bin/app"), reg("etc/conf"),
		reg(".prefetch.landmark"), reg("usr/share/doc"),
	}}
	p := FromLandmark(3, withLandmark)
	require.Equal(t, []Item{
		{Layer: 3, Path: "usr/bin/app", Priority: 0, Reason: ReasonLandmark},
		{Layer: 3, Path: "etc/conf", Priority: 1, Reason: ReasonLandmark},
	}, p.Items())

	none := &toc.TOC{NoPrefetch: true, Entries: []*toc.Entry{reg(".no.prefetch.landmark"), reg("a")}}
	require.Zero(t, FromLandmark(0, none).Len())
	require.Zero(t, FromLandmark(0, &toc.TOC{Entries: []*toc.Entry{reg("a")}}).Len())
	require.Zero(t, FromLandmark(0, nil).Len())
}
