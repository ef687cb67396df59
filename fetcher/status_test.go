package fetcher_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lazylayer/lazylayer/fetcher"
)

// TestHTTPBlobUnknown checks that a registry's 404 is ErrBlobUnknown and
// carries the registry's own error code and message, bounded.
func TestHTTPBlobUnknown(t *testing.T) {
	digestPath := "/v2/a/blobs/sha256:" + strings.Repeat("0", 64)
	for _, tc := range []struct {
		name        string
		status      int
		body        string
		code, quote string // what the error must show
	}{
		{"distribution error", http.StatusNotFound,
			`{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:00"}]}`,
			"BLOB_UNKNOWN", `"blob unknown to registry"`},
		{"bare 404", http.StatusNotFound, "404 page not found", "", ""},
		{"code on another status", http.StatusBadRequest,
			`{"errors":[{"code":"BLOB_UNKNOWN","message":"gone"}]}`, "BLOB_UNKNOWN", `"gone"`},
		{"huge message", http.StatusNotFound,
			`{"errors":[{"code":"BLOB_UNKNOWN","message":"` + strings.Repeat("x", 8000) + `"}]}`,
			"BLOB_UNKNOWN", "...(8000 bytes)"},
		{"body past the bound", http.StatusNotFound,
			`{"errors":[{"code":"BLOB_UNKNOWN","message":"` + strings.Repeat("x", 1<<20) + `"}]}`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			f, err := fetcher.NewHTTP(srv.URL+digestPath, fetcher.WithSize(10), fast)
			if err != nil {
				t.Fatal(err)
			}
			_, err = fetchAll(t, f, []fetcher.Range{{Offset: 0, Length: 1}})
			if !errors.Is(err, fetcher.ErrBlobUnknown) {
				t.Fatalf("error %v, want ErrBlobUnknown", err)
			}
			var status *fetcher.StatusError
			if !errors.As(err, &status) || status.Code != tc.status || status.RegistryCode != tc.code {
				t.Fatalf("error %v: status %+v, want status %d and registry code %q", err, status, tc.status, tc.code)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.quote) || len(msg) > 600 {
				t.Errorf("error %q (%d bytes) does not quote %q within bounds", msg, len(msg), tc.quote)
			}
			if f.Stats().Retries != 0 {
				t.Errorf("%d retries of a missing blob", f.Stats().Retries)
			}
		})
	}
	// Other statuses are not ErrBlobUnknown.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"errors":[{"code":"DENIED","message":"no"}]}`, http.StatusForbidden)
	}))
	defer srv.Close()
	f, _ := fetcher.NewHTTP(srv.URL+digestPath, fetcher.WithSize(10), fast)
	_, err := fetchAll(t, f, []fetcher.Range{{Offset: 0, Length: 1}})
	var status *fetcher.StatusError
	if errors.Is(err, fetcher.ErrBlobUnknown) || !errors.Is(err, fetcher.ErrUnauthorized) || !errors.As(err, &status) || status.RegistryCode != "DENIED" {
		t.Errorf("403 DENIED: error %v, want ErrUnauthorized with code DENIED only", err)
	}
}

// TestHTTPPlainHTTPHint checks that asking a plain-HTTP registry for
// HTTPS fails at once with a hint naming WithPlainHTTP.
func TestHTTPPlainHTTPHint(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/a@sha256:" + strings.Repeat("0", 64)
	f, err := fetcher.NewHTTP(ref, fast)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Size(context.Background())
	if !errors.Is(err, http.ErrSchemeMismatch) || !strings.Contains(fmt.Sprint(err), "WithPlainHTTP") {
		t.Errorf("error %v, want http.ErrSchemeMismatch with a hint naming WithPlainHTTP", err)
	}
	if f.Stats().Retries != 0 {
		t.Errorf("%d retries", f.Stats().Retries)
	}
	// With the option, the same reference reaches the server.
	f, _ = fetcher.NewHTTP(ref, fetcher.WithPlainHTTP(), fast)
	if _, err := f.Size(context.Background()); !errors.Is(err, fetcher.ErrBlobUnknown) {
		t.Errorf("WithPlainHTTP: error %v, want ErrBlobUnknown", err)
	}
}
