package tocjson

import (
	"reflect"
	"testing"
	"time"
)

func TestParseModTime(t *testing.T) {
	for _, s := range []string{
		"2024-03-01T12:00:00Z", "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
		"2000-02-29T00:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2024-04-31T00:00:00Z",
		"2024-13-01T00:00:00Z", "2024-00-01T00:00:00Z", "2024-01-00T00:00:00Z", "2024-01-01T24:00:00Z",
		"2024-01-01T23:60:00Z", "2024-01-01T23:59:60Z", "2024-01-01T23:59:59z", "2024-01-01t23:59:59Z",
		"2024-01-01T23:59:59+01:00", "2024-01-01T23:59:59.5Z", "+024-01-01T23:59:59Z", "2024-1-01T23:59:59Z",
	} {
		got, gotErr := parseModTime(s)
		want, wantErr := time.Parse(time.RFC3339, s)
		if (gotErr == nil) != (wantErr == nil) || gotErr == nil && !reflect.DeepEqual(got.UTC(), want.UTC()) {
			t.Errorf("parseModTime(%q) = %v, %v; time.Parse: %v, %v", s, got, gotErr, want, wantErr)
		}
	}
}
