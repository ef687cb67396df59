package simregistry

import (
	"math"
	"testing"
	"time"
)

func TestParseBandwidth(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
	}{
		{"50MB/s", 50e6},
		{"50MBps", 50e6},
		{"50 MB/s", 50e6},
		{"400Mbit/s", 50e6},
		{"400Mb/s", 50e6},
		{"1.5GiB/s", 1.5 * (1 << 30)},
		{"100kB/s", 100e3},
		{"8kbps", 1e3},
		{"12345", 12345},
		{"0", 0},
		{"unlimited", 0},
	} {
		got, err := ParseBandwidth(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseBandwidth(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "fast", "-5MB/s", "50XB/s", "50M", "1e400B/s"} {
		if got, err := ParseBandwidth(bad); err == nil {
			t.Errorf("ParseBandwidth(%q) = %v, want an error", bad, got)
		}
	}
}

func TestFormatBandwidth(t *testing.T) {
	for in, want := range map[float64]string{50e6: "50MB/s", 1.5e9: "1.5GB/s", 999: "999B/s", 1e6 / 3: "333.33kB/s"} {
		if got := FormatBandwidth(in); got != want {
			t.Errorf("FormatBandwidth(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestPhysicalLimit(t *testing.T) {
	l := Link{RTT: 20 * time.Millisecond, Bandwidth: 50e6}
	if got, want := l.PhysicalLimit(34e6), 40*time.Millisecond+680*time.Millisecond; got != want {
		t.Errorf("PhysicalLimit(34MB) = %v, want %v", got, want)
	}
	if got := (Link{RTT: time.Second}).PhysicalLimit(1 << 40); got != 2*time.Second {
		t.Errorf("unlimited link: PhysicalLimit = %v, want 2s", got)
	}
}

// FuzzParseBandwidth checks that any flag value either parses to a finite,
// non-negative rate or fails, without panicking.
func FuzzParseBandwidth(f *testing.F) {
	for _, s := range []string{"50MB/s", "400Mbit/s", "1.5GiB/s", "unlimited", "12345", "5 kbps"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		bw, err := ParseBandwidth(s)
		if err == nil && (bw < 0 || math.IsInf(bw, 0) || math.IsNaN(bw)) {
			t.Errorf("ParseBandwidth(%q) = %v", s, bw)
		}
	})
}
