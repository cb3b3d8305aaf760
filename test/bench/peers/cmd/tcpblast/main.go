// tcpblast: a lean byte-stream load generator and sink for the mqtt bench.
//
// It must cost far less CPU per byte than the proxy under test, or the bench
// measures the load generator: a Node.js sender and sink on one event loop
// saturated its core while Envoy's worker with plain tcp_proxy sat at ~40%.
// So nothing here copies payload bytes in user space: the sender uses
// sendfile(2) from a file (the kernel hands page references to loopback TCP)
// and the sink splices the socket into a pipe that it splices to /dev/null.
//
// Protocol with the harness (one line each):
//
//	stdout: LISTEN <port>      the sink's port, once at start
//	stdin:  RUN <target-port> <prefix-file> <stream-file> <ms>
//	        connect to 127.0.0.1:<target-port>, send the prefix file once,
//	        then the stream file over and over for <ms> milliseconds
//	stdout: RESULT <bytes> <seconds>
//	        bytes the sink received from the first stream byte until the
//	        sender stopped, and that time
//	stdout: FAIL <reason>      that run failed (the process keeps going)
//
// The sink accepts any number of connections and counts them all.
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

var received atomic.Int64

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("FAIL listen:", err)
		os.Exit(2)
	}
	go acceptLoop(ln.(*net.TCPListener))
	fmt.Printf("LISTEN %d\n", ln.Addr().(*net.TCPAddr).Port)

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 5 && f[0] == "RUN" {
			if line, err := run(f[1], f[2], f[3], f[4]); err != nil {
				fmt.Println("FAIL", err)
			} else {
				fmt.Println(line)
			}
		} else if len(f) > 0 && f[0] == "QUIT" {
			return
		}
	}
}

func acceptLoop(ln *net.TCPListener) {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			return
		}
		go sink(c)
	}
}

// sink moves everything the connection receives to /dev/null through a pipe,
// counting bytes; the data never enters this process.
func sink(c *net.TCPConn) {
	defer c.Close()
	file, err := c.File() // a blocking duplicate of the socket
	if err != nil {
		return
	}
	defer file.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer null.Close()
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		return
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	const chunk = 1 << 20
	sock := int(file.Fd())
	for {
		n, err := syscall.Splice(sock, nil, p[1], nil, chunk, 0)
		if n <= 0 || err != nil {
			return
		}
		received.Add(n)
		for left := n; left > 0; {
			m, err := syscall.Splice(p[0], nil, int(null.Fd()), nil, int(left), 0)
			if m <= 0 || err != nil {
				return
			}
			left -= m
		}
	}
}

func run(portText, prefixPath, streamPath, msText string) (string, error) {
	port, err := strconv.Atoi(portText)
	if err != nil {
		return "", fmt.Errorf("port %q: %v", portText, err)
	}
	ms, err := strconv.Atoi(msText)
	if err != nil {
		return "", fmt.Errorf("ms %q: %v", msText, err)
	}
	prefix, err := os.ReadFile(prefixPath)
	if err != nil {
		return "", err
	}
	stream, err := os.Open(streamPath)
	if err != nil {
		return "", err
	}
	defer stream.Close()
	info, err := stream.Stat()
	if err != nil || info.Size() == 0 {
		return "", fmt.Errorf("stream file %s is empty or unreadable", streamPath)
	}
	conn, err := net.DialTCP("tcp", nil, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.Write(prefix); err != nil {
		return "", err
	}
	start := time.Now()
	startBytes := received.Load()
	deadline := start.Add(time.Duration(ms) * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, err := stream.Seek(0, io.SeekStart); err != nil {
			return "", err
		}
		// *net.TCPConn.ReadFrom an *os.File is sendfile(2)
		if _, err := conn.ReadFrom(stream); err != nil {
			return "", fmt.Errorf("send: %v", err)
		}
	}
	elapsed := time.Since(start).Seconds()
	got := received.Load() - startBytes
	return fmt.Sprintf("RESULT %d %.6f", got, elapsed), nil
}
