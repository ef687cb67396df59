package fetcher_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
	"github.com/lazylayer/lazylayer/internal/registrytest"
)

// Fetchers sharing a HostTable learn a host's range support once between
// them: the second fetcher sends no multi-range request to a host the
// first learnt refuses them.
func TestHTTPSharedHostTable(t *testing.T) {
	blob := testBlob(1 << 20)
	srv := registrytest.NewBlobServer(t, blob, registrytest.WithFaultRate(1, 1, registrytest.FaultRejectMultiRange))
	hosts := fetcher.NewHostTable()
	for i := 0; i < 2; i++ {
		f, _ := fetcher.NewHTTP(srv.BlobURL(), fast, fetcher.WithHostTable(hosts))
		got, err := fetchAll(t, f, someRanges)
		if err != nil {
			t.Fatal(err)
		}
		checkBytes(t, blob, got)
	}
	multi := 0
	for _, l := range srv.Log() {
		if strings.Contains(l.Range, ",") {
			multi++
		}
	}
	if multi != 1 {
		t.Errorf("%d multi-range requests by two fetchers sharing a host table, want 1", multi)
	}
}

// A fetcher given an authorized transport answers no challenge of its
// own: a 401 fails with ErrUnauthorized, without a token request, and
// the transport's Authorization goes through.
func TestHTTPAuthorizedTransport(t *testing.T) {
	blob := testBlob(1 << 20)
	srv := registrytest.NewBlobServer(t, blob, registrytest.WithBearerAuth("", ""))
	f, _ := fetcher.NewHTTP(srv.BlobURL(), fast, fetcher.WithCredentials("u", "p"),
		fetcher.WithAuthorizedTransport(http.DefaultTransport))
	if _, err := fetchAll(t, f, someRanges[:1]); !errors.Is(err, fetcher.ErrUnauthorized) {
		t.Fatalf("fetch through a transport that does not authenticate: %v, want ErrUnauthorized", err)
	}
	for _, l := range srv.Log() {
		if l.Path == "/token" || l.Authorization != "" {
			t.Errorf("the fetcher authenticated itself: %+v", l)
		}
	}

	authorizing := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer token-x")
		return http.DefaultTransport.RoundTrip(r)
	})
	f, _ = fetcher.NewHTTP(srv.BlobURL(), fast, fetcher.WithAuthorizedTransport(authorizing))
	got, err := fetchAll(t, f, someRanges)
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, blob, got)
}
