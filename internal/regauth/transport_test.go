package regauth_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/lazylayer/lazylayer/internal/regauth"
	"github.com/lazylayer/lazylayer/internal/registrytest"
)

// The transport answers the first 401 with one token and reuses it; a
// request with a body is replayed through GetBody.
func TestTransportBearer(t *testing.T) {
	blob := []byte("0123456789")
	srv := registrytest.NewBlobServer(t, blob, registrytest.WithBearerAuth("u", "p"))
	u, _ := url.Parse(srv.URL)
	creds := func(context.Context) (*regauth.Credentials, error) {
		return &regauth.Credentials{Username: "u", Password: "p"}, nil
	}
	auth := regauth.New(u, srv.Repo, creds, http.DefaultClient)
	client := &http.Client{Transport: &regauth.Transport{Base: http.DefaultTransport, Auth: auth}}
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest(http.MethodGet, srv.BlobURL(), bytes.NewReader([]byte("body")))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, blob) {
			t.Fatalf("GET %d: %s %q", i, resp.Status, got)
		}
	}
	unauthorized := 0
	for _, l := range srv.Log() {
		if l.Authorization == "" {
			unauthorized++
		}
	}
	if unauthorized != 1 {
		t.Errorf("%d requests without a token, want 1", unauthorized)
	}
}

// Without credentials for a Basic registry the transport fails with
// ErrUnauthorized.
func TestTransportNoCredentials(t *testing.T) {
	srv := registrytest.NewBlobServer(t, []byte("x"), registrytest.WithServerBasicAuth("u", "p"))
	u, _ := url.Parse(srv.URL)
	client := &http.Client{Transport: &regauth.Transport{Base: http.DefaultTransport, Auth: regauth.New(u, srv.Repo, nil, http.DefaultClient)}}
	_, err := client.Get(srv.BlobURL())
	if !errors.Is(err, regauth.ErrUnauthorized) {
		t.Fatalf("GET: %v, want ErrUnauthorized", err)
	}
}
