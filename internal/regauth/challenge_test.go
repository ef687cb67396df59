package regauth

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseChallenges(t *testing.T) {
	got := ParseChallenges([]string{
		`Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"`,
		`Basic realm="x\"y", Newauth realm=apps, type=1, title="Login to \"apps\""`,
	})
	want := `[{bearer map[realm:https://auth.example/token scope:repository:a/b:pull service:registry.example]} {basic map[realm:x"y]} {newauth map[realm:apps title:Login to "apps" type:1]}]`
	if fmt.Sprint(got) != want {
		t.Errorf("ParseChallenges:\n got %v\nwant %s", got, want)
	}
}

func FuzzParseChallenges(f *testing.F) {
	f.Add(`Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"`)
	f.Add(`Basic realm="x\"y", Newauth realm=apps, type=1`)
	f.Fuzz(func(t *testing.T, s string) {
		for _, c := range ParseChallenges([]string{s}) {
			if c.Scheme == "" || c.Scheme != strings.ToLower(c.Scheme) {
				t.Fatalf("bad scheme %q", c.Scheme)
			}
		}
	})
}
