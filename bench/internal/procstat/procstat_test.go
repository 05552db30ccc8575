package procstat

import (
	"fmt"
	"math"
	"os"
	"testing"
)

func TestParseStatusKB(t *testing.T) {
	text := []byte("Name:\twspush\nVmPeak:\t  100 kB\nVmRSS:\t   23456 kB\nThreads: 4\n")
	v, err := ParseStatusKB(text, "VmRSS")
	if err != nil || v != 23456 {
		t.Fatalf("VmRSS = %d, %v; want 23456", v, err)
	}
	if _, err := ParseStatusKB(text, "VmSwap"); err == nil {
		t.Fatal("missing field: no error")
	}
}

func TestParseStatCPU(t *testing.T) {
	// comm with a space and a ')' inside, as the kernel allows
	text := []byte("1234 (we ird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0 100 0 0\n")
	v, err := ParseStatCPU(text)
	if err != nil || v != 325 {
		t.Fatalf("cpu = %d, %v; want 325", v, err)
	}
	if _, err := ParseStatCPU([]byte("1 (x) S 1 2")); err == nil {
		t.Fatal("short stat: no error")
	}
}

func TestParseMeminfo(t *testing.T) {
	text := []byte("MemTotal:       24000000 kB\nMemFree: 1 kB\nMemAvailable:   23000000 kB\nSlab:             200000 kB\nSReclaimable: 1 kB\nSUnreclaim:       150000 kB\n")
	m, err := ParseMeminfo(text)
	if err != nil {
		t.Fatal(err)
	}
	if m.Slab != 200000*1024 || m.SUnreclaim != 150000*1024 || m.MemAvailable != 23000000*1024 || m.MemTotal != 24000000*1024 {
		t.Fatalf("%+v", m)
	}
}

func TestSlope(t *testing.T) {
	s, err := Slope([]float64{1000, 5000}, []float64{10e6, 14e6})
	if err != nil || s != 1000 {
		t.Fatalf("two-point slope = %v, %v; want 1000", s, err)
	}
	// y = 2x + 7 with noise that cancels
	s, err = Slope([]float64{0, 1, 2, 3}, []float64{7.5, 8.5, 11.5, 12.5})
	if err != nil || math.Abs(s-1.8) > 1e-9 {
		t.Fatalf("fit slope = %v, %v; want 1.8", s, err)
	}
	if _, err := Slope([]float64{1, 1}, []float64{1, 2}); err == nil {
		t.Fatal("equal x: no error")
	}
	if _, err := Slope([]float64{1}, []float64{1}); err == nil {
		t.Fatal("one point: no error")
	}
}

func TestSelf(t *testing.T) {
	if _, err := RSSBytes(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := CPUSeconds(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMeminfo(); err != nil {
		t.Fatal(err)
	}
}

func TestParseCPUTotals(t *testing.T) {
	busy, total, err := ParseCPUTotals([]byte("cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 1 2 3 4\n"))
	if err != nil || total != 1181 || busy != 161 {
		t.Fatalf("busy %d total %d err %v", busy, total, err)
	}
}

func TestParseCPUSet(t *testing.T) {
	text := []byte("cpu  300 0 100 1000 10 0 50 0 0 0\n" +
		"cpu0 100 0 50 700 5 0 10 0 0 0\n" +
		"cpu1 200 0 50 300 5 0 40 0 0 0\n" +
		"intr 1 2 3\n")
	busy, total, err := ParseCPUSet(text, []int{1})
	if err != nil || busy != 290 || total != 595 {
		t.Fatalf("cpu1: busy %d total %d err %v, want 290 595", busy, total, err)
	}
	busy, total, err = ParseCPUSet(text, []int{0, 1})
	if err != nil || busy != 450 || total != 1460 {
		t.Fatalf("cpu0,1: busy %d total %d err %v, want 450 1460", busy, total, err)
	}
	if _, _, err := ParseCPUSet(text, []int{2}); err == nil {
		t.Fatal("cpu2 is not in the text: want an error")
	}
	if f := BusyFraction(100, 1000, 190, 1100); f != 0.9 {
		t.Fatalf("BusyFraction = %v, want 0.9", f)
	}
	if f := BusyFraction(100, 1000, 100, 1000); f != 0 {
		t.Fatalf("BusyFraction of no time = %v, want 0", f)
	}
}

func TestParseCPUList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
	}{{"1", []int{1}}, {"0-2,5", []int{0, 1, 2, 5}}, {" 3 ", []int{3}}} {
		got, err := ParseCPUList(c.in)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "a", "2-1", "1,", "-1"} {
		if _, err := ParseCPUList(bad); err == nil {
			t.Errorf("ParseCPUList(%q): want an error", bad)
		}
	}
}
