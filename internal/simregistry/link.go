package simregistry

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Link describes a simulated network path. The zero Link is an ideal one:
// no latency and no bandwidth cap.
type Link struct {
	// RTT is the round-trip time every request pays before the first
	// byte of its response arrives.
	RTT time.Duration
	// Bandwidth is the capacity in bytes per second shared by all
	// response bodies; zero or less means unlimited.
	Bandwidth float64
}

// TransferTime returns how long n bytes take to cross the link's
// bandwidth, ignoring latency. It is zero on an unlimited link.
func (l Link) TransferTime(n int64) time.Duration {
	if l.Bandwidth <= 0 || n <= 0 {
		return 0
	}
	return time.Duration(float64(n) / l.Bandwidth * float64(time.Second))
}

// PhysicalLimit returns the least time any lazy puller needs to obtain n
// compressed bytes it did not know the location of in advance:
// 2*RTT + n/bandwidth.
//
// Two round trips are unavoidable. The first fetches the blob's index (the
// footer and TOC at its tail): before it arrives the client cannot know
// which byte ranges hold the files it wants. The second fetches those
// ranges, all in parallel or in one multi-range request, and its bytes
// cannot arrive faster than the bandwidth carries them. The size of the
// index itself is part of n when the caller counts it.
func (l Link) PhysicalLimit(n int64) time.Duration {
	return 2*l.RTT + l.TransferTime(n)
}

// String formats the link as "20ms RTT, 50MB/s".
func (l Link) String() string {
	bw := "unlimited"
	if l.Bandwidth > 0 {
		bw = FormatBandwidth(l.Bandwidth)
	}
	return fmt.Sprintf("%v RTT, %s", l.RTT, bw)
}

// byteUnits maps a unit prefix to its multiplier. Decimal prefixes are
// powers of 1000 and binary ones (Ki, Mi, Gi) powers of 1024, as in
// network and storage tooling.
var byteUnits = map[string]float64{
	"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12,
	"ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30, "ti": 1 << 40,
}

// ParseBandwidth parses a rate such as "50MB/s", "400Mbit/s", "1.5GiB/s",
// "100kbps" or a bare number of bytes per second ("50000000") and returns
// bytes per second. "B" means bytes and "bit" or "b" bits; "/s" and "ps"
// are optional. "0" and "unlimited" return 0, meaning no cap.
func ParseBandwidth(s string) (float64, error) {
	in := strings.TrimSpace(s)
	lower := strings.ToLower(in)
	if lower == "unlimited" || lower == "inf" {
		return 0, nil
	}
	// Split the number from its unit.
	i := strings.IndexFunc(in, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r == '.' || r == '_')
	})
	if i < 0 {
		i = len(in)
	}
	num, err := strconv.ParseFloat(in[:i], 64)
	if err != nil || num < 0 || math.IsInf(num, 0) {
		return 0, fmt.Errorf("simregistry: bandwidth %q: bad number", s)
	}
	unit := strings.TrimSpace(in[i:])
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "/s"), "ps")
	if unit == "" {
		return num, nil
	}
	// The last letter decides bytes ("B") against bits ("b", "bit").
	bits := false
	switch {
	case strings.HasSuffix(unit, "bit"):
		bits, unit = true, strings.TrimSuffix(unit, "bit")
	case strings.HasSuffix(unit, "B"):
		unit = strings.TrimSuffix(unit, "B")
	case strings.HasSuffix(unit, "b"):
		bits, unit = true, strings.TrimSuffix(unit, "b")
	default:
		return 0, fmt.Errorf("simregistry: bandwidth %q: unit must end in B (bytes) or b/bit (bits)", s)
	}
	mult, ok := byteUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("simregistry: bandwidth %q: unknown prefix %q", s, unit)
	}
	rate := num * mult
	if bits {
		rate /= 8
	}
	if math.IsInf(rate, 0) {
		return 0, fmt.Errorf("simregistry: bandwidth %q: too large", s)
	}
	return rate, nil
}

// FormatBandwidth formats bytes per second with a decimal prefix, as
// "50MB/s" or "1.5GB/s".
func FormatBandwidth(bytesPerSecond float64) string {
	v, unit := bytesPerSecond, "B/s"
	for _, u := range []string{"kB/s", "MB/s", "GB/s", "TB/s"} {
		if v < 1000 {
			break
		}
		v, unit = v/1000, u
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64) + unit
}
