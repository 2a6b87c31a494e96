package sa

import (
	"sync"
	"testing"
)

func TestSAD(t *testing.T) {
	var d SAD
	if d.Lookup(0x1001) != nil || d.Len() != 0 {
		t.Fatal("zero SAD not empty")
	}
	mk := func(spi uint32) *SA {
		c := gcmConfig()
		c.SPI = spi
		s, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b, a2 := mk(0x1001), mk(0x1002), mk(0x1001)
	if err := d.Add(a); err != nil {
		t.Fatal(err)
	}
	if err := d.Add(b); err != nil {
		t.Fatal(err)
	}
	if err := d.Add(a2); err == nil {
		t.Fatal("Add accepted a duplicate SPI")
	}
	if d.Lookup(0x1001) != a || d.Lookup(0x1002) != b || d.Len() != 2 || len(d.All()) != 2 {
		t.Fatal("lookup after Add")
	}
	if old := d.Replace(a2); old != a || d.Lookup(0x1001) != a2 {
		t.Fatal("Replace")
	}
	if a.Err() != nil {
		t.Fatal("Replace closed the old SA")
	}
	if !d.Delete(0x1001) || d.Lookup(0x1001) != nil || a2.Err() != ErrExpired {
		t.Fatal("Delete did not remove and expire")
	}
	if d.Delete(0x1001) {
		t.Fatal("Delete of a missing SPI reported true")
	}
	if r := d.Remove(0x1002); r != b || b.Err() != nil || d.Len() != 0 {
		t.Fatal("Remove")
	}
}

func TestSADConcurrentReaders(t *testing.T) {
	var d SAD
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if s := d.Lookup(0x2000); s != nil && s.SPI() != 0x2000 {
					t.Error("wrong SA")
				}
			}
		}()
	}
	for i := range 200 {
		c := gcmConfig()
		c.SPI = 0x2000 + uint32(i%3)
		s, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		if old := d.Replace(s); old != nil {
			old.Close()
		}
	}
	close(stop)
	wg.Wait()
	if n := testing.AllocsPerRun(100, func() { _ = d.Lookup(0x2001) }); n != 0 {
		t.Fatalf("Lookup allocates %v", n)
	}
}
