package tally

import (
	"sync"
	"testing"
)

func TestIncCapsAndDecForgets(t *testing.T) {
	var ty Tally[string]
	for i := 0; i < 3; i++ {
		if !ty.Inc("a", 3) {
			t.Fatalf("Inc %d refused under the cap", i)
		}
	}
	if ty.Inc("a", 3) {
		t.Fatal("Inc past the cap")
	}
	if !ty.Inc("a", 0) || ty.Count("a") != 4 {
		t.Fatal("max 0 must mean no cap")
	}
	ty.Inc("b", 0)
	if ty.Keys() != 2 {
		t.Fatalf("Keys = %d", ty.Keys())
	}
	for i := 0; i < 4; i++ {
		ty.Dec("a")
	}
	ty.Dec("a") // below zero is harmless
	if ty.Count("a") != 0 || ty.Keys() != 1 {
		t.Fatalf("after Dec: count %d keys %d", ty.Count("a"), ty.Keys())
	}
}

func TestConcurrentIncDec(t *testing.T) {
	var ty Tally[int]
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				ty.Inc(i%4, 0)
				ty.Dec(i % 4)
			}
		}()
	}
	wg.Wait()
	if ty.Keys() != 0 {
		t.Fatalf("%d keys left", ty.Keys())
	}
}
