// A small net/http program for the network tests and benchmarks.
//
//	goweb serve ADDR      serve until killed: / says hello, /echo returns
//	                      the request body, /bytes?n=N streams N bytes,
//	                      /sha256 returns the SHA-256 of the request body,
//	                      /exit ends the process at once (status 3),
//	                      /count returns how often it was asked, /info
//	                      says $HOSTNAME and $VERSION
//	goweb get URL         fetch URL, print status and body
//	goweb self            serve on 127.0.0.1:0 and fetch from itself
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
)

func handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from goweb\n")
	})
	// A counter held in memory: snapshots must carry it.
	var count atomic.Int64
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d\n", count.Add(1))
	})
	// Which replica answered, and of which version (for the service tests).
	mux.HandleFunc("/info", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s\n", os.Getenv("HOSTNAME"), os.Getenv("VERSION"))
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		os.Exit(3)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		buf := make([]byte, 64<<10)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		for n > 0 {
			c := len(buf)
			if n < c {
				c = n
			}
			if _, err := w.Write(buf[:c]); err != nil {
				return
			}
			n -= c
		}
	})
	mux.HandleFunc("/sha256", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%d %s\n", n, hex.EncodeToString(h.Sum(nil)))
	})
	return mux
}

func get(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	fmt.Printf("%d %s", resp.StatusCode, body)
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: goweb serve ADDR | get URL | self")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = http.ListenAndServe(os.Args[2], handler())
	case "get":
		err = get(os.Args[2])
	case "self":
		var l net.Listener
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			go http.Serve(l, handler())
			err = get("http://" + l.Addr().String() + "/")
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "goweb:", err)
		os.Exit(1)
	}
}
