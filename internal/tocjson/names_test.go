package tocjson

import "testing"

func TestNewDirs(t *testing.T) {
	for _, tc := range []struct {
		dir, known string
		want       int
	}{
		{"", "", 0},
		{"", "a/b", 0},
		{"a", "", 1},
		{"a/b/c", "", 3},
		{"a/b", "a/b", 0},
		{"a/b", "a/b/c", 0},
		{"a/b/c", "a/b", 1},
		{"a/b/c/d", "a", 3},
		{"a/b", "a/bc", 1},
		{"a/bc", "a/b", 1},
		{"a/b/c", "a/x", 2},
		{"ab", "a", 1},
		{"a", "ab", 1},
		{"x/y", "a/b", 2},
	} {
		if got := newDirs(tc.dir, tc.known); got != tc.want {
			t.Errorf("newDirs(%q, %q) = %d, want %d", tc.dir, tc.known, got, tc.want)
		}
	}
}
