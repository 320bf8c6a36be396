// Memory churn: allocates and frees 512 MiB in 1 MiB pieces with a live set
// of 32 MiB (natively its peak RSS stays near 100 MiB), then holds 48 MiB (the live set never exceeds 64 MiB),
// reports, frees everything and returns it to the OS, reports again. The test
// reads the monitor's RSS at each report.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"time"
)

var sink [][]byte

func touch(b []byte) {
	for i := 0; i < len(b); i += 4096 {
		b[i] = byte(i)
	}
}

func main() {
	var live [][]byte
	for i := 0; i < 512; i++ { // 512 x 1 MiB allocated in total
		b := make([]byte, 1<<20)
		touch(b)
		live = append(live, b)
		if len(live) > 32 { // the live set stays at 32 MiB
			live = live[1:]
		}
	}
	fmt.Println("churned 512 MiB")
	live = nil
	for i := 0; i < 6; i++ { // hold 48 MiB
		b := make([]byte, 8<<20)
		touch(b)
		sink = append(sink, b)
	}
	fmt.Println("holding 48 MiB")
	os.Stdout.Sync()
	time.Sleep(1500 * time.Millisecond)
	sink = nil
	debug.FreeOSMemory()
	fmt.Println("freed")
	time.Sleep(1500 * time.Millisecond)
	fmt.Println("done")
}
