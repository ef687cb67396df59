package snapshotter

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/containerd/containerd/v2/core/snapshots"
)

// statSnapshotter is a snapshots.Snapshotter whose Stat finds only the
// snapshots in exists.
type statSnapshotter struct {
	snapshots.Snapshotter
	exists map[string]bool
}

func (s statSnapshotter) Stat(_ context.Context, key string) (snapshots.Info, error) {
	if !s.exists[key] {
		return snapshots.Info{}, context.Canceled // any error: not there
	}
	return snapshots.Info{Name: key}, nil
}

// TestPendingSnapshotWaitsForItsMount: between the commit of a lazily
// mounted snapshot and its FUSE mount, a Stat of it, and a second
// Prepare of the same layer, wait for the mount.
func TestPendingSnapshotWaitsForItsMount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := statSnapshotter{exists: map[string]bool{}}
		s := &Snapshotter{Snapshotter: base, pending: map[string]chan struct{}{}}
		ctx := t.Context()
		done, err := s.claim(ctx, "layer")
		if err != nil || done == nil {
			t.Fatalf("claim: done %t, %v", done != nil, err)
		}
		base.exists["layer"] = true // committed, not mounted

		stat := make(chan error, 1)
		go func() { _, err := s.Stat(ctx, "layer"); stat <- err }()
		again := make(chan bool, 1)
		go func() { d, err := s.claim(ctx, "layer"); again <- d == nil && err == nil }()
		synctest.Wait()
		select {
		case <-stat:
			t.Fatal("Stat of a pending snapshot returned before its mount")
		case <-again:
			t.Fatal("a second Prepare of a pending snapshot went on before its mount")
		default:
		}
		done() // mounted
		if err := <-stat; err != nil {
			t.Errorf("Stat after the mount: %v", err)
		}
		if !<-again {
			t.Error("a second Prepare of a mounted snapshot did not find it there")
		}
		if _, err := s.Stat(ctx, "other"); err == nil {
			t.Error("Stat found a snapshot that does not exist")
		}
	})
}
