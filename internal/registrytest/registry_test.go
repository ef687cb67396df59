package registrytest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
)

func testRegistry(t *testing.T, r *Registry, auth bool) {
	data := []byte("registrytest blob")
	d, err := r.pushBlob(context.Background(), "a/b", data)
	if err != nil {
		t.Fatalf("%s: push: %v", r.Kind, err)
	}
	req, _ := http.NewRequest(http.MethodGet, r.BlobURL("a/b", d), nil)
	req.Header.Set("Range", "bytes=4-7")
	if auth {
		req.SetBasicAuth("u", "p")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[4:8]) {
		t.Fatalf("%s: ranged GET = %s %q", r.Kind, resp.Status, body)
	}
	if auth {
		resp, err := http.Get(r.BlobURL("a/b", d))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: GET without credentials = %s", r.Kind, resp.Status)
		}
	}
}

func TestStart(t *testing.T) {
	for _, auth := range []bool{false, true} {
		var opts []Option
		if auth {
			opts = append(opts, WithBasicAuth("u", "p"))
		}
		testRegistry(t, Start(t, opts...), auth)
	}
}

func TestInProcessFallback(t *testing.T) {
	testRegistry(t, startInProcess(t, config{}), false)
	testRegistry(t, startInProcess(t, config{username: "u", password: "p"}), true)
}
