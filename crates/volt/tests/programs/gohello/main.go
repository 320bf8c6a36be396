// The smallest Go program: the runtime's start-up is what is measured.
package main

import "fmt"

func main() { fmt.Println("hello from Go") }
