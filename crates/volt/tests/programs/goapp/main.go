// A Go program that exercises the runtime the way services do: 1,000
// goroutines over channels with a WaitGroup, time.Sleep and timers, a
// CPU-bound goroutine that must not starve the others (asynchronous
// preemption), file I/O under /tmp, and a file read from the rootfs
// (relative path: run natively from the rootfs directory, as / in the guest).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

func spin(stop *bool) int {
	n := 0
	for !*stop { // no function calls: only a signal can preempt this loop
		n++
	}
	return n
}

func main() {
	var wg sync.WaitGroup
	results := make(chan int, 64)
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results <- i * i % 97
		}(i)
	}
	go func() { wg.Wait(); close(results) }()
	sum := 0
	for r := range results {
		sum += r
	}
	fmt.Println("goroutines: sum", sum)

	start := time.Now()
	time.Sleep(15 * time.Millisecond)
	t := time.NewTimer(5 * time.Millisecond)
	<-t.C
	tick := time.NewTicker(2 * time.Millisecond)
	for i := 0; i < 3; i++ {
		<-tick.C
	}
	tick.Stop()
	fmt.Println("timers: elapsed >= 21ms:", time.Since(start) >= 21*time.Millisecond)

	stop := false
	done := make(chan int)
	go func() { done <- spin(&stop) }()
	time.Sleep(time.Millisecond)
	progressed := 0
	for i := 0; i < 5; i++ {
		time.Sleep(2 * time.Millisecond)
		progressed++
	}
	stop = true
	fmt.Println("preemption: main progressed", progressed, "spinner ran", <-done > 0)

	dir, err := os.MkdirTemp("", "goapp")
	if err != nil {
		fmt.Println("mkdirtemp:", err)
		return
	}
	p := filepath.Join(dir, "a.txt")
	if err := os.WriteFile(p, []byte("line one\nline two\n"), 0o644); err != nil {
		fmt.Println("write:", err)
	}
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("line three\n")
	f.Close()
	data, _ := os.ReadFile(p)
	fmt.Printf("file: %d lines\n", strings.Count(string(data), "\n"))
	os.Rename(p, p+".old")
	entries, _ := os.ReadDir(dir)
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	fmt.Println("dir:", names)
	os.RemoveAll(dir)
	_, err = os.Stat(dir)
	fmt.Println("removed:", os.IsNotExist(err))

	cfg, err := os.ReadFile("etc/config.txt")
	fmt.Printf("rootfs file: %q %v\n", strings.TrimSpace(string(cfg)), err)
}
