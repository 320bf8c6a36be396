// A nil-pointer dereference recovered with defer/recover: Go relies on the
// fault of page 0 (it removes nil checks for small offsets), so page 0 must
// stay unmapped whatever the system-call path does.
package main

import (
	"fmt"
	"os"
)

type node struct {
	next *node
	val  int
}

func deref(n *node) (v int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return n.next.val, nil
}

func main() {
	for i := 0; i < 3; i++ {
		_, err := deref(&node{})
		fmt.Println("recovered:", err)
	}
	fmt.Println("pid positive:", os.Getpid() > 0)
}
