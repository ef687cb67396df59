package fetcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in    string
		r     Range
		total int64
		ok    bool
	}{
		{"bytes 0-0/1", Range{0, 1}, 1, true},
		{"bytes 10-19/*", Range{10, 10}, -1, true},
		{"bytes 5-4/10", Range{}, 0, false},
		{"bytes 0-9/9", Range{}, 0, false},
		{"bytes -1-9/10", Range{}, 0, false},
		{"bytes +1-9/10", Range{}, 0, false},
		{"bits 0-9/10", Range{}, 0, false},
		{"bytes 0-9223372036854775807/*", Range{}, 0, false},
		{"bytes 0-99999999999999999999/*", Range{}, 0, false},
		{"", Range{}, 0, false},
	}
	for _, tt := range tests {
		r, total, err := parseContentRange(tt.in)
		if (err == nil) != tt.ok || tt.ok && (r != tt.r || total != tt.total) {
			t.Errorf("parseContentRange(%q) = %v, %d, %v", tt.in, r, total, err)
		}
		if err != nil && !errors.Is(err, ErrBadContentRange) {
			t.Errorf("parseContentRange(%q) error %v is not ErrBadContentRange", tt.in, err)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	f.Add("bytes 0-0/1")
	f.Add("bytes 10-19/*")
	f.Fuzz(func(t *testing.T, s string) {
		r, total, err := parseContentRange(s)
		if err != nil {
			return
		}
		if r.Offset < 0 || r.Length <= 0 || r.End() < r.Offset || total != -1 && total < r.End() {
			t.Fatalf("parseContentRange(%q) = %v, %d", s, r, total)
		}
		totalStr := "*"
		if total >= 0 {
			totalStr = fmt.Sprint(total)
		}
		if r2, total2, err := parseContentRange(fmt.Sprintf("bytes %s/%s", r, totalStr)); err != nil || r2 != r || total2 != total {
			t.Fatalf("parseContentRange(%q) = %v, %d does not round-trip: %v, %d, %v", s, r, total, r2, total2, err)
		}
	})
}

func TestParseDockerConfig(t *testing.T) {
	cfg, err := parseDockerConfig([]byte(`{"auths":{
		"https://index.docker.io/v1/":{"auth":"dTpw"},
		"REG.example:5000":{"username":"a","password":"b"},
		"token.example":{"identitytoken":"x"},
		"store.example":{}},
		"credsStore":"desktop",
		"credHelpers":{"https://GCR.io":"gcloud","reg.example:5000":"ecr-login"}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := "map[reg.example:5000:{a b } registry-1.docker.io:{u p } token.example:{  x}]"
	if fmt.Sprint(cfg.auths) != want {
		t.Errorf("auths = %v, want %s", cfg.auths, want)
	}
	// credHelpers come first, then credsStore, as in docker.
	for host, want := range map[string]string{
		"gcr.io":               "docker-credential-gcloud gcr.io",
		"REG.example:5000":     "docker-credential-ecr-login reg.example:5000",
		"registry-1.docker.io": "docker-credential-desktop https://index.docker.io/v1/",
		"other.example":        "docker-credential-desktop other.example",
	} {
		cred, helper := cfg.lookup(host)
		if cred != nil || helper == nil || helper.program+" "+helper.serverURL != want {
			t.Errorf("lookup(%s) = %v, %+v; want the helper %s", host, cred, helper, want)
		}
	}
	cfg.credsStore = ""
	if cred, helper := cfg.lookup("token.example"); helper != nil || cred == nil || cred.identityToken != "x" {
		t.Errorf("lookup(token.example) = %v, %v; want the identity token", cred, helper)
	}
	if cred, helper := cfg.lookup("nowhere.example"); cred != nil || helper != nil {
		t.Errorf("lookup(nowhere.example) = %v, %v; want anonymous", cred, helper)
	}
	for _, bad := range []string{`{"auths":{"x":{"auth":"!!"}}}`, `{"auths":{"x":{"auth":"bm9jb2xvbg=="}}}`, `[`,
		`{"credsStore":"../../bin/sh"}`, `{"credHelpers":{"x":"/bin/sh"}}`, `{"credsStore":"-x"}`} {
		if _, err := parseDockerConfig([]byte(bad)); err == nil {
			t.Errorf("parseDockerConfig(%s): no error", bad)
		}
	}
}

func FuzzParseDockerConfig(f *testing.F) {
	f.Add([]byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"r:5000":{"username":"a","password":"b"}}}`))
	f.Add([]byte(`{"auths":{"t":{"identitytoken":"x"}},"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseDockerConfig(data)
		if err != nil {
			return
		}
		if cfg.auths == nil {
			t.Fatal("nil map without error")
		}
		for _, name := range append(slices.Collect(maps.Values(cfg.credHelpers)), cfg.credsStore) {
			if name != "" && (strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, "-")) {
				t.Fatalf("helper name %q accepted", name)
			}
		}
	})
}

// FuzzReadMultipart feeds arbitrary multipart/byteranges bodies to the
// reader for two asked spans: it must never panic, on success both spans
// must be complete, and fn must get only complete spans, each once.
func FuzzReadMultipart(f *testing.F) {
	f.Add([]byte("--B\r\nContent-Range: bytes 0-9/100\r\n\r\n0123456789\r\n--B\r\nContent-Range: bytes 20-24/100\r\n\r\nabcde\r\n--B--\r\n"))
	f.Add([]byte("--B\r\nContent-Range: bytes 20-24/100\r\n\r\nabcdef\r\n--B--\r\n"))
	h, err := NewHTTP("example.com/a@sha256:"+strings.Repeat("0", 64), WithSize(100))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ranges := []Range{{0, 10}, {20, 5}}
		spans := []Span{{Range: ranges[0], Covers: []int{0}}, {Range: ranges[1], Covers: []int{1}}}
		handed := map[Range]int{}
		d := newDelivery(h, spans, ranges, func(r Range, data []byte) error {
			if int64(len(data)) != r.Length {
				t.Fatalf("range %v handed %d bytes", r, len(data))
			}
			handed[r]++
			return nil
		})
		_, err := d.readMultipart(strings.NewReader(string(body)), "B", []int{0, 1})
		if err == nil && (d.filled[0] != 10 || d.filled[1] != 5) {
			t.Fatalf("success with spans filled %v", d.filled)
		}
		for r, n := range handed {
			if n != 1 || !d.done(slices.Index(ranges, r)) {
				t.Fatalf("range %v handed %d times, span done %v", r, n, d.filled)
			}
		}
	})
}

// FuzzReadStream feeds arbitrary bodies, starting at blob offset 0, to a
// stream serving two spans whose ranges overlap: it must never panic,
// hand each range at most once and with the body's bytes, hand every
// range on success, and never read past the last span.
func FuzzReadStream(f *testing.F) {
	f.Add([]byte("0123456789abcdefghijklmnopqrstuvwxyz"))
	f.Add([]byte("0123456789abc"))
	f.Add([]byte{})
	h, err := NewHTTP("example.com/a@sha256:"+strings.Repeat("0", 64), WithSize(100))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ranges := []Range{{0, 4}, {2, 8}, {20, 5}}
		spans := []Span{{Range: Range{0, 10}, Covers: []int{0, 1}}, {Range: ranges[2], Covers: []int{2}}}
		handed := map[Range]int{}
		d := newDelivery(h, spans, ranges, func(r Range, data []byte) error {
			if r.End() > int64(len(body)) || !bytes.Equal(data, body[r.Offset:r.End()]) {
				t.Fatalf("range %v handed %q, not the body's bytes", r, data)
			}
			handed[r]++
			return nil
		})
		j := newJob(context.Background(), d, []int{0, 1}, false)
		n, err := h.read(newStream(j, 0, 100), bytes.NewReader(body))
		if n > 25 {
			t.Fatalf("read %d bytes for spans ending at 25", n)
		}
		for r, k := range handed {
			if k != 1 {
				t.Fatalf("range %v handed %d times", r, k)
			}
		}
		if err == nil && len(handed) != len(ranges) {
			t.Fatalf("success with ranges %v handed", handed)
		}
		if (err == nil) != (len(body) >= 25) {
			t.Fatalf("read of a %d-byte body: %v", len(body), err)
		}
	})
}
