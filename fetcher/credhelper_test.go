package fetcher_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/registrytest"
)

// fakeHelper is a docker credential helper, docker-credential-fake, that
// keeps one credential (for the server URL $FAKE_SERVER) and logs each
// run to $FAKE_LOG.
const fakeHelper = `#!/bin/sh
[ "$1" = get ] || exit 2
read -r server
echo "$server" >> "$FAKE_LOG"
if [ "$server" = "$FAKE_SERVER" ]; then
	printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}' "$server" "$FAKE_USER" "$FAKE_SECRET"
else
	echo "credentials not found in native keychain"
	exit 1
fi
`

// installFakeHelper puts docker-credential-fake on $PATH, keeping user
// and secret for server, and returns the file its runs are logged in.
func installFakeHelper(t *testing.T, server, user, secret string) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the fake helper is a shell script")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-fake"), []byte(fakeHelper), 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "runs")
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_SERVER", server)
	t.Setenv("FAKE_USER", user)
	t.Setenv("FAKE_SECRET", secret)
	t.Setenv("FAKE_LOG", log)
	return log
}

// writeDockerConfig writes config as a docker config directory's
// config.json and returns the directory.
func writeDockerConfig(t *testing.T, config string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func helperRuns(t *testing.T, log string) []string {
	t.Helper()
	data, err := os.ReadFile(log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(data))
}

func TestHTTPCredentialHelpers(t *testing.T) {
	blob := testBlob(1000)
	for name, tc := range map[string]struct {
		server func() *registrytest.BlobServer
		user   string
		config string // HOST stands for the registry's host
	}{
		"credHelpers, basic": {
			server: func() *registrytest.BlobServer {
				return registrytest.NewBlobServer(t, blob, registrytest.WithServerBasicAuth("carol", "pa:ss"))
			},
			user:   "carol",
			config: `{"auths":{"HOST":{"auth":"eDp5"}},"credHelpers":{"HOST":"fake"}}`,
		},
		"credsStore, bearer": {
			server: func() *registrytest.BlobServer {
				return registrytest.NewBlobServer(t, blob, registrytest.WithBearerAuth("carol", "pa:ss"))
			},
			user:   "carol",
			config: `{"auths":{"HOST":{}},"credsStore":"fake"}`,
		},
		"credsStore, identity token": {
			server: func() *registrytest.BlobServer {
				return registrytest.NewBlobServer(t, blob, registrytest.WithRefreshToken("pa:ss"))
			},
			user:   "<token>",
			config: `{"credsStore":"fake"}`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := tc.server()
			host := strings.TrimPrefix(srv.URL, "http://")
			log := installFakeHelper(t, host, tc.user, "pa:ss")
			dir := writeDockerConfig(t, strings.ReplaceAll(tc.config, "HOST", host))
			f, err := fetcher.NewHTTP(srv.BlobURL(), fetcher.WithDockerConfig(dir), fast)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fetchAll(t, f, []fetcher.Range{{Offset: 0, Length: 1000}, {Offset: 10, Length: 20}})
			if err != nil {
				t.Fatal(err)
			}
			checkBytes(t, blob, got)
			if runs := helperRuns(t, log); len(runs) != 1 || runs[0] != host {
				t.Errorf("helper runs %v, want one for %s", runs, host)
			}
		})
	}
}

func TestHTTPCredentialHelperFailures(t *testing.T) {
	blob := testBlob(1000)
	auth := registrytest.NewBlobServer(t, blob, registrytest.WithServerBasicAuth("carol", "pa:ss"))
	anonymous := registrytest.NewBlobServer(t, blob)
	log := installFakeHelper(t, "elsewhere.example", "carol", "pa:ss")
	store := writeDockerConfig(t, `{"credsStore":"fake"}`)

	// A registry that never asks for credentials never runs the helper.
	f, err := fetcher.NewHTTP(anonymous.BlobURL(), fetcher.WithDockerConfig(store), fast)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fetchAll(t, f, []fetcher.Range{{Offset: 0, Length: 10}}); err != nil {
		t.Fatal(err)
	}
	if runs := helperRuns(t, log); len(runs) != 0 {
		t.Errorf("anonymous registry: helper ran for %v", runs)
	}

	// The helper keeps nothing for this registry, or is not installed.
	for name, dir := range map[string]string{"not found": store, "not installed": writeDockerConfig(t, `{"credsStore":"absent"}`)} {
		f, err := fetcher.NewHTTP(auth.BlobURL(), fetcher.WithDockerConfig(dir), fast)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fetchAll(t, f, []fetcher.Range{{Offset: 0, Length: 10}}); !errors.Is(err, fetcher.ErrUnauthorized) {
			t.Errorf("%s: error %v, want ErrUnauthorized", name, err)
		}
	}
}
