package tarcheck_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/lazylayer/lazylayer/internal/tarcheck"
	"github.com/lazylayer/lazylayer/internal/tartest"
)

// FuzzTarHeaderFastPath checks that parsePlainHeader parses exactly as
// archive/tar does: whatever it accepts, a tar.Reader reads to a header
// with the same compared fields, and ParseHeaders, fast path or not,
// accepts only what a tar.Reader reads whole.
func FuzzTarHeaderFastPath(f *testing.F) {
	f.Fuzz(func(t *testing.T, seg []byte) {
		var hdr tar.Header
		if err := tarcheck.ParseHeaders(seg, &hdr, testErrs); err == nil {
			r := bytes.NewReader(seg)
			want, err := tar.NewReader(r).Next()
			if err != nil || r.Len() != 0 {
				t.Fatalf("ParseHeaders accepted headers archive/tar reads otherwise: %v, %d bytes left", err, r.Len())
			}
			if !sameComparedTarFields(&hdr, want) {
				t.Fatalf("ParseHeaders and archive/tar disagree:\nours: %+v\ntar:  %+v", hdr, want)
			}
		}
		if !tarcheck.ParsePlainHeader(seg, &hdr) {
			return
		}
		want, err := tar.NewReader(bytes.NewReader(seg)).Next()
		if err != nil {
			t.Fatalf("fast path accepted a header archive/tar rejects: %v", err)
		}
		if !sameComparedTarFields(&hdr, want) || len(want.PAXRecords) != 0 {
			t.Fatalf("fast path and archive/tar disagree:\nfast: %+v\ntar:  %+v", hdr, want)
		}
	})
}

// sameComparedTarFields reports whether a and b agree in the fields
// parsePlainHeader fills.
func sameComparedTarFields(a, b *tar.Header) bool {
	return a.Name == b.Name && a.Linkname == b.Linkname && a.Uname == b.Uname && a.Gname == b.Gname && a.Typeflag == b.Typeflag && a.Mode == b.Mode &&
		a.Uid == b.Uid && a.Gid == b.Gid && a.Size == b.Size && a.ModTime.Equal(b.ModTime) &&
		a.AccessTime.Equal(b.AccessTime) && a.ChangeTime.Equal(b.ChangeTime) &&
		a.Devmajor == b.Devmajor && a.Devminor == b.Devminor
}

func TestTarHeaderReader(t *testing.T) {
	mt := time.Unix(1700000000, 0)
	long := strings.Repeat("d/", 60) + "file"
	for _, tc := range []struct {
		name string
		hdr  tar.Header
		fast bool // parsed without archive/tar
	}{
		{"ustar file", tar.Header{Name: "usr/bin/go", Mode: 0o755, Size: 1000, ModTime: mt, Uid: 1, Gid: 2, Format: tar.FormatUSTAR}, true},
		{"ustar prefix", tar.Header{Name: long, Mode: 0o644, Size: 512, ModTime: mt, Format: tar.FormatUSTAR}, true},
		{"ustar dir", tar.Header{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt, Format: tar.FormatUSTAR}, true},
		{"ustar symlink", tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "../t", ModTime: mt, Format: tar.FormatUSTAR}, true},
		{"ustar device", tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, ModTime: mt, Format: tar.FormatUSTAR}, true},
		{"gnu file", tar.Header{Name: "a", Mode: 0o600, Size: 1, ModTime: mt, Format: tar.FormatGNU}, true},
		{"gnu times", tar.Header{Name: "a", Size: 1, ModTime: mt, AccessTime: mt, ChangeTime: mt, Format: tar.FormatGNU}, false},
		{"gnu long name", tar.Header{Name: strings.Repeat("n", 120), ModTime: mt, Format: tar.FormatGNU}, false},
		{"pax", tar.Header{Name: "x", ModTime: mt, PAXRecords: map[string]string{"SCHILY.xattr.user.a": "b"}, Format: tar.FormatPAX}, false},
		{"pax times", tar.Header{Name: "x", ModTime: mt.Add(time.Millisecond), Format: tar.FormatPAX}, false},
		{"base-256", tar.Header{Name: "big", Uid: 1 << 22, ModTime: mt, Format: tar.FormatGNU}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blocks := tartest.HeaderBlocks(t, &tc.hdr)
			if ok := tarcheck.ParsePlainHeader(blocks, new(tar.Header)); ok != tc.fast {
				t.Errorf("parsePlainHeader accepted: %v, want %v", ok, tc.fast)
			}
			var hdr tar.Header
			if err := tarcheck.ParseHeaders(blocks, &hdr, testErrs); err != nil {
				t.Fatal(err)
			}
			want, err := tar.NewReader(bytes.NewReader(blocks)).Next()
			if err != nil {
				t.Fatal(err)
			}
			if !sameComparedTarFields(&hdr, want) {
				t.Errorf("ParseHeaders = %+v; archive/tar: %+v", hdr, want)
			}
		})
	}
	// Damage is archive/tar's to report.
	bad := tartest.HeaderBlocks(t, &tar.Header{Name: "a", ModTime: mt, Format: tar.FormatUSTAR})
	bad[100]++ // the mode, so the checksum no longer matches
	if err := tarcheck.ParseHeaders(bad, new(tar.Header), testErrs); !errors.Is(err, tar.ErrHeader) || !errors.Is(err, errInvalid) {
		t.Errorf("bad checksum: error %v, want tar.ErrHeader and errInvalid", err)
	}
}

func TestValidTarChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		b := make([]byte, tarcheck.BlockSize)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		var unsigned, signed int64
		for i, c := range b {
			if 148 <= i && i < 156 {
				c = ' '
			}
			unsigned += int64(c)
			signed += int64(int8(c))
		}
		for _, sum := range []int64{unsigned, signed, unsigned + 1} {
			if sum < 0 {
				continue
			}
			copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
			if got, want := tarcheck.ValidChecksum(b), sum == unsigned || sum == signed; got != want {
				t.Fatalf("checksum %d (unsigned %d, signed %d): valid = %v", sum, unsigned, signed, got)
			}
		}
	}
}
