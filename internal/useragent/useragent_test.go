package useragent

import (
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	if got := String(""); !strings.HasPrefix(got, "lazylayer/") || Version() == "" {
		t.Errorf("String(\"\") = %q", got)
	}
	if got := String("tool/1.0"); !strings.HasPrefix(got, "tool/1.0 lazylayer/") {
		t.Errorf("String(\"tool/1.0\") = %q", got)
	}
}
