package prefetch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/fstest"

	"github.com/lazylayer/lazylayer/overlay"
	"github.com/stretchr/testify/require"
)

func TestParsePatternsAndMatch(t *testing.T) {
	ps, err := ParsePatterns("usr/bin/app\n\nusr/lib/python3/*\nusr/share/zoneinfo/**\nusr/bin/app\n")
	require.NoError(t, err)
	require.Equal(t, []string{"usr/bin/app", "usr/lib/python3/*", "usr/share/zoneinfo/**"}, ps.List())
	require.Equal(t, "usr/bin/app\nusr/lib/python3/*\nusr/share/zoneinfo/**", ps.String())

	for name, rank := range map[string]int{
		"usr/bin/app":                     0,
		"/usr/bin/app":                    0,
		"./usr/lib/python3/os.py":         1,
		"usr/share/zoneinfo/Europe/Paris": 2,
		"usr/share/zoneinfo/UTC":          2,
	} {
		got, ok := ps.Rank(name)
		require.True(t, ok, name)
		require.Equal(t, rank, got, name)
	}
	for _, name := range []string{"usr/bin/app2", "usr/lib/python3/json/decoder.py", "usr/share/zoneinfo", "usr", "/", ""} {
		require.False(t, ps.Match(name), name)
	}

	all, err := ParsePatterns("**")
	require.NoError(t, err)
	require.True(t, all.Match("anything/at/all"))
	require.False(t, Patterns{}.Match("x"))

	for _, bad := range []string{"/abs", "a//b", "a/./b", "a/../b", "a/*/b", "*", "a/**/b", "a\tb", "./a", "a/"} {
		_, err := ParsePatterns(bad)
		require.ErrorIs(t, err, ErrBadPattern, "%q", bad)
	}
	_, err = ParsePatterns(string(make([]byte, maxPatternsInput+1)))
	require.ErrorIs(t, err, ErrBadPattern)
}

func TestPatternsDropWhatBroaderOnesCover(t *testing.T) {
	ps, err := ParsePatterns("a/x\nb/y\na/*\na/sub/z\na/sub/**\nb/**\nc")
	require.NoError(t, err)
	require.Equal(t, []string{"a/*", "b/**", "a/sub/**", "c"}, ps.List(),
		"a broader pattern takes the place of the first one it covers")

	ps, err = ParsePatterns("x/y/z\nx/**\nx/y/**\n**\nw")
	require.NoError(t, err)
	require.Equal(t, []string{"**"}, ps.List())
}

func planOf(paths ...string) *Plan {
	var p Plan
	for i, name := range paths {
		p.Add(Item{Path: name, Priority: i})
	}
	return &p
}

func TestPlanPatternsWithinBudget(t *testing.T) {
	p := planOf("/usr/bin/python3", "/usr/lib/libc.so.6", "/etc/passwd")
	require.Equal(t, "usr/bin/python3\nusr/lib/libc.so.6\netc/passwd", p.Patterns(-1, 0).String(),
		"exact while it fits")

	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("/usr/lib/python3.12/encodings/codec_%02d.py", i))
	}
	p = planOf(append([]string{"/usr/bin/python3"}, append(many, "/etc/hosts")...)...)
	ps := p.Patterns(-1, 200)
	require.Equal(t, []string{"usr/bin/python3", "usr/lib/python3.12/encodings/*", "etc/hosts"}, ps.List(),
		"the directory that costs most becomes dir/*")

	ps = p.Patterns(-1, 30)
	require.LessOrEqual(t, len(ps.String()), 30)
	require.Equal(t, []string{"usr/**", "etc/**"}, ps.List(), "generalised one level at a time")

	ps = p.Patterns(-1, 1)
	require.Equal(t, "**", ps.String(), "nothing smaller covers every path")

	// Per layer.
	var layered Plan
	layered.Add(Item{Layer: 0, Path: "lib/a"})
	layered.Add(Item{Layer: 1, Path: "bin/b"})
	require.Equal(t, []string{"bin/b"}, layered.Patterns(1, 0).List())

	// Paths a pattern cannot express are left out.
	require.Equal(t, []string{"ok"}, planOf("bad\nname", "a/*/b", "ok").Patterns(-1, 0).List())
}

// TestPlanPatternsInvariants: whatever the plan and budget, the export fits
// the budget (when 2 bytes or more), still matches every path of the plan,
// and is deterministic.
func TestPlanPatternsInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dirs := []string{"usr/lib", "usr/lib/x86_64-linux-gnu", "usr/share/zoneinfo/Europe", "etc", "opt/app/node_modules/pkg/dist", "bin"}
	for round := range 200 {
		var names []string
		for range rng.IntN(400) + 1 {
			names = append(names, fmt.Sprintf("%s/f%d.so", dirs[rng.IntN(len(dirs))], rng.IntN(300)))
		}
		p := planOf(names...)
		budget := rng.IntN(4000) + 2
		ps := p.Patterns(-1, budget)
		s := ps.String()
		require.LessOrEqual(t, len(s), budget, "round %d", round)
		require.Equal(t, s, p.Patterns(-1, budget).String())
		back, err := ParsePatterns(s)
		require.NoError(t, err)
		require.Equal(t, ps.List(), back.List())
		for _, n := range names {
			require.True(t, back.Match(n), "round %d: %s not matched by %q", round, n, s)
		}
	}
}

func TestFromPatterns(t *testing.T) {
	img := overlay.New(fstest.MapFS{
		"usr/bin/app":          file("a"),
		"usr/lib/py/os.py":     file("o"),
		"usr/lib/py/site.py":   file("s"),
		"usr/lib/py/json/x.py": file("j"),
		"usr/share/tz/UTC":     file("u"),
		"usr/share/tz/Eu/Rome": file("r"),
		"usr/share/tz/Eu/Link": link("Rome"),
		"etc/keep":             file("k"),
	})
	ps, err := ParsePatterns("usr/share/tz/**\nusr/bin/app\nusr/lib/py/*\nmissing/**\nnot/there")
	require.NoError(t, err)
	p, err := FromPatterns(context.Background(), img, ps)
	require.NoError(t, err)
	require.Equal(t, []string{
		"usr/share/tz/Eu/Rome", "usr/share/tz/UTC", "usr/bin/app", "usr/lib/py/os.py", "usr/lib/py/site.py",
	}, p.Paths(-1))
	require.Equal(t, 2, p.Items()[len(p.Items())-1].Priority)
	require.Equal(t, ReasonPattern, p.Items()[0].Reason)

	_, err = FromPatterns(context.Background(), img, ps, WithMaxItems(2))
	require.ErrorIs(t, err, ErrLimit)
}
